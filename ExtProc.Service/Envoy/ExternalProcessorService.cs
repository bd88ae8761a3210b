using Envoy.Service.ExtProc.V3;
using ExtProc.Hosting;
using ExtProc.Observability;
using Grpc.Core;

namespace ExtProc.Envoy;

/// <summary>
/// The gRPC endpoint Envoy's ext_proc filter calls: one bidirectional stream per HTTP request. This is
/// the single catch boundary of a stream. A stream never ends OK before Envoy is done with it: Envoy
/// would go on without us for the rest of the request (faults.md P1-P3).
/// </summary>
internal sealed class ExternalProcessorService : ExternalProcessor.ExternalProcessorBase
{
    private readonly Pipeline.PipelineSnapshotProvider _snapshots;
    private readonly DrainCoordinator _drain;
    private readonly TimeProvider _time;
    private readonly ILogger<ExternalProcessorService> _logger;

    public ExternalProcessorService(
        Pipeline.PipelineSnapshotProvider snapshots,
        DrainCoordinator drain,
        TimeProvider time,
        ILogger<ExternalProcessorService> logger)
    {
        _snapshots = snapshots;
        _drain = drain;
        _time = time;
        _logger = logger;
    }

    /// <summary>Reads the next message; a transport reset (Envoy's normal close) reads as the end.</summary>
    private async ValueTask<bool> ReadNextAsync(IAsyncStreamReader<ProcessingRequest> requests, CancellationToken cancellation, DrainCoordinator.StreamLease lease)
    {
        try
        {
            return await requests.MoveNext(cancellation).ConfigureAwait(false);
        }
        catch (IOException)
        {
            ProcessorLog.StreamReset(_logger);
            return false;
        }
        catch (OperationCanceledException) when (!lease.DrainExpired && !cancellation.IsCancellationRequested)
        {
            ProcessorLog.StreamReset(_logger);
            return false;
        }
    }

    public override async Task Process(
        IAsyncStreamReader<ProcessingRequest> requestStream,
        IServerStreamWriter<ProcessingResponse> responseStream,
        ServerCallContext context)
    {
        var snapshot = _snapshots.Current
            ?? throw new RpcException(new Status(StatusCode.Unavailable, "ExtProc has no configuration loaded yet."));

        using var lease = _drain.Enter(context.CancellationToken);
        var cancellation = lease.Token;
        using var processor = new StreamProcessor(snapshot, responseStream, _time, _logger, cancellation);
        try
        {
            while (await ReadNextAsync(requestStream, cancellation, lease).ConfigureAwait(false))
            {
                await processor.HandleAsync(requestStream.Current).ConfigureAwait(false);
            }

            // Envoy half-closed (or reset): it expects nothing more, so ending here skips nothing.
        }
        catch (PeerGoneException)
        {
            ProcessorLog.StreamReset(_logger);
        }
        catch (OperationCanceledException) when (lease.DrainExpired)
        {
            ProcessorLog.StreamDrained(_logger);
            throw new RpcException(new Status(StatusCode.Unavailable, "ExtProc is shutting down."));
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            // Envoy reset the stream (its normal way to close): nobody is left to answer.
            ProcessorLog.StreamReset(_logger);
        }
        catch (ProtocolViolationException ex)
        {
            ProcessorLog.ProtocolViolation(_logger, ex.Message, ex.Status.ToString());
            throw new RpcException(new Status(ex.Status, ex.Message));
        }
        catch (RpcException)
        {
            throw;
        }
        catch (Exception ex)
        {
            ProcessorLog.StreamFailed(_logger, nameof(StatusCode.Internal), ex);
            throw new RpcException(new Status(StatusCode.Internal, "ExtProc failed while processing the stream."));
        }
        finally
        {
            await processor.EndAsync().ConfigureAwait(false);
        }
    }
}
