using System.Threading.Channels;
using Google.Protobuf.WellKnownTypes;

namespace ExtProc.EnvoyEmulator;

/// <summary>
/// One HTTP stream through the emulated filter chain (HCM → ext_proc → router → upstream). All filter logic
/// runs on one event loop, like Envoy's worker thread, so callbacks never race.
/// </summary>
public sealed partial class EmulatedStream
{
    private readonly Channel<HttpFrame> _downstream = Channel.CreateUnbounded<HttpFrame>();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _sideStreamClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<ExchangeLogEntry> _log = [];
    private readonly MemoryStream _upstreamBody = new();

    /// <summary>Response frames for the client: <see cref="HeadersFrame"/>, then <see cref="DataFrame"/>s and
    /// an optional <see cref="TrailersFrame"/>; or a <see cref="ResetFrame"/> at any point.</summary>
    public ChannelReader<HttpFrame> Downstream => _downstream.Reader;

    /// <summary>Completes when the HTTP stream is over (downstream finished or reset).</summary>
    public Task Completion => _completion.Task;

    /// <summary>Completes when the side stream is closed (or was never opened).</summary>
    public Task SideStreamClosed => _sideStreamClosed.Task;

    /// <summary>This stream's counters (also added to <see cref="EnvoyEmulator.Stats"/>).</summary>
    public ExtProcStats Stats { get; }

    /// <summary><c>%RESPONSE_CODE_DETAILS%</c> of the downstream response.</summary>
    public string? ResponseCodeDetails { get; private set; }

    public IReadOnlyList<ExchangeLogEntry> Log
    {
        get
        {
            lock (_log)
            {
                return [.. _log];
            }
        }
    }

    public IReadOnlyDictionary<string, Struct> DynamicMetadata
    {
        get
        {
            lock (_metadata)
            {
                return new Dictionary<string, Struct>(_metadata);
            }
        }
    }

    public int RouteSelections { get; private set; }

    public string? UpstreamCluster { get; private set; }

    /// <summary>Headers the router sent upstream; null if the upstream was never contacted.</summary>
    public HttpHeaderList? UpstreamHeaders { get; private set; }

    public HttpHeaderList? UpstreamTrailers { get; private set; }

    public bool UpstreamReset { get; private set; }

    public byte[] UpstreamBodySnapshot()
    {
        lock (_upstreamBody)
        {
            return _upstreamBody.ToArray();
        }
    }

    /// <summary>The client went away (downstream reset).</summary>
    public void Abort() => Post(new ClientAbortEvent());
}
