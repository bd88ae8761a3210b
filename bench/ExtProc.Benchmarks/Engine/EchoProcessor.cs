using ExtProc.Envoy;
using Grpc.Core;
using EnvoyExtProc = global::Envoy.Service.ExtProc.V3;

namespace ExtProc.Benchmarks.Engine;

/// <summary>
/// The floor of one ext_proc hop (BENCH.md): answers every message with CONTINUE for its phase and does
/// nothing else. Same shape as <see cref="StreamProcessor"/> (one instance per stream, one call per
/// message, cached replies) so that the ratio to it is the price of the engine's work.
/// </summary>
internal sealed class EchoProcessor
{
    private static readonly EnvoyExtProc.ProcessingResponse RequestHeaders = new() { RequestHeaders = new EnvoyExtProc.HeadersResponse() };
    private static readonly EnvoyExtProc.ProcessingResponse ResponseHeaders = new() { ResponseHeaders = new EnvoyExtProc.HeadersResponse() };
    private static readonly EnvoyExtProc.ProcessingResponse RequestBody = new() { RequestBody = new EnvoyExtProc.BodyResponse() };
    private static readonly EnvoyExtProc.ProcessingResponse ResponseBody = new() { ResponseBody = new EnvoyExtProc.BodyResponse() };
    private static readonly EnvoyExtProc.ProcessingResponse RequestTrailers = new() { RequestTrailers = new EnvoyExtProc.TrailersResponse() };
    private static readonly EnvoyExtProc.ProcessingResponse ResponseTrailers = new() { ResponseTrailers = new EnvoyExtProc.TrailersResponse() };

    private readonly IAsyncStreamWriter<EnvoyExtProc.ProcessingResponse> _writer;

    public EchoProcessor(IAsyncStreamWriter<EnvoyExtProc.ProcessingResponse> writer) => _writer = writer;

    public ValueTask HandleAsync(EnvoyExtProc.ProcessingRequest message) => new(_writer.WriteAsync(message.RequestCase switch
    {
        EnvoyExtProc.ProcessingRequest.RequestOneofCase.RequestHeaders => RequestHeaders,
        EnvoyExtProc.ProcessingRequest.RequestOneofCase.ResponseHeaders => ResponseHeaders,
        EnvoyExtProc.ProcessingRequest.RequestOneofCase.RequestBody => RequestBody,
        EnvoyExtProc.ProcessingRequest.RequestOneofCase.ResponseBody => ResponseBody,
        EnvoyExtProc.ProcessingRequest.RequestOneofCase.RequestTrailers => RequestTrailers,
        EnvoyExtProc.ProcessingRequest.RequestOneofCase.ResponseTrailers => ResponseTrailers,
        _ => throw new RpcException(new Status(StatusCode.InvalidArgument, "ProcessingRequest carries no known phase.")),
    }));
}

/// <summary>The echo processor behind the real gRPC service base class: the service-level floor.</summary>
internal sealed class EchoService : EnvoyExtProc.ExternalProcessor.ExternalProcessorBase
{
    public override async Task Process(
        IAsyncStreamReader<EnvoyExtProc.ProcessingRequest> requestStream,
        IServerStreamWriter<EnvoyExtProc.ProcessingResponse> responseStream,
        ServerCallContext context)
    {
        var processor = new EchoProcessor(responseStream);
        var cancellation = context.CancellationToken;
        while (await requestStream.MoveNext(cancellation).ConfigureAwait(false))
        {
            await processor.HandleAsync(requestStream.Current).ConfigureAwait(false);
        }
    }
}

/// <summary>
/// The least a correct FULL_DUPLEX_STREAMED peer does: CONTINUE the headers and hand every body chunk
/// straight back as a streamed mutation (the received bytes, not a copy).
/// </summary>
internal sealed class DuplexEchoProcessor
{
    private readonly IAsyncStreamWriter<EnvoyExtProc.ProcessingResponse> _writer;
    private readonly EchoProcessor _echo;

    public DuplexEchoProcessor(IAsyncStreamWriter<EnvoyExtProc.ProcessingResponse> writer)
    {
        _writer = writer;
        _echo = new EchoProcessor(writer);
    }

    public ValueTask HandleAsync(EnvoyExtProc.ProcessingRequest message)
    {
        if (message.RequestCase != EnvoyExtProc.ProcessingRequest.RequestOneofCase.RequestBody)
        {
            return _echo.HandleAsync(message);
        }

        var body = message.RequestBody;
        return new ValueTask(_writer.WriteAsync(new EnvoyExtProc.ProcessingResponse
        {
            RequestBody = new EnvoyExtProc.BodyResponse
            {
                Response = new EnvoyExtProc.CommonResponse
                {
                    BodyMutation = new EnvoyExtProc.BodyMutation
                    {
                        StreamedResponse = new EnvoyExtProc.StreamedBodyResponse { Body = body.Body, EndOfStream = body.EndOfStream },
                    },
                },
            },
        }));
    }
}
