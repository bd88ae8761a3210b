using System.Text;
using Envoy.Service.ExtProc.V3;
using Google.Protobuf.WellKnownTypes;

namespace ExtProc.EnvoyEmulator;

/// <summary>Envoy's ext_proc stats counters (spec §2.11 names), by name.</summary>
public sealed class ExtProcStats
{
    public const string StreamsStarted = "streams_started";
    public const string StreamMsgsSent = "stream_msgs_sent";
    public const string StreamMsgsReceived = "stream_msgs_received";
    public const string SpuriousMsgsReceived = "spurious_msgs_received";
    public const string StreamsClosed = "streams_closed";
    public const string StreamsFailed = "streams_failed";
    public const string FailureModeAllowed = "failure_mode_allowed";
    public const string MessageTimeouts = "message_timeouts";
    public const string RejectedHeaderMutations = "rejected_header_mutations";
    public const string OverrideMessageTimeoutReceived = "override_message_timeout_received";
    public const string OverrideMessageTimeoutIgnored = "override_message_timeout_ignored";
    public const string ClearRouteCacheIgnored = "clear_route_cache_ignored";
    public const string ClearRouteCacheDisabled = "clear_route_cache_disabled";
    public const string ClearRouteCacheUpstreamIgnored = "clear_route_cache_upstream_ignored";
    public const string HttpNotOkRespReceived = "http_not_ok_resp_received";
    public const string ImmediateResponsesSent = "immediate_responses_sent";
    public const string ServerHalfClosed = "server_half_closed";

    private readonly Dictionary<string, long> _counters = [];
    private readonly ExtProcStats? _parent;

    public ExtProcStats()
    {
    }

    /// <summary>Per-stream counters that also add up into <paramref name="parent"/> (Envoy's stats are per filter config).</summary>
    public ExtProcStats(ExtProcStats parent) => _parent = parent;

    public long this[string name]
    {
        get
        {
            lock (_counters)
            {
                return _counters.GetValueOrDefault(name);
            }
        }
    }

    public IReadOnlyDictionary<string, long> Snapshot()
    {
        lock (_counters)
        {
            return new Dictionary<string, long>(_counters);
        }
    }

    internal void Inc(string name)
    {
        lock (_counters)
        {
            _counters[name] = _counters.GetValueOrDefault(name) + 1;
        }

        _parent?.Inc(name);
    }

    public override string ToString()
    {
        var sb = new StringBuilder();
        foreach (var (key, value) in Snapshot())
        {
            sb.Append(key).Append('=').Append(value).Append(' ');
        }

        return sb.ToString();
    }
}

public enum ExchangeLogKind
{
    /// <summary>Envoy opened the side stream.</summary>
    StreamOpened,

    /// <summary>Envoy sent a <see cref="ProcessingRequest"/>.</summary>
    Sent,

    /// <summary>Envoy received a <see cref="ProcessingResponse"/>.</summary>
    Received,

    /// <summary>The processor ended the call (see <see cref="ExchangeLogEntry.Note"/> for the status).</summary>
    ServerClosed,

    /// <summary>Envoy closed the side stream (half-close then cancel).</summary>
    ClientClosed,

    /// <summary>A filter event worth seeing in the log (timeout, spurious message, local reply…).</summary>
    Event,
}

/// <summary>One entry of the ordered side-stream log.</summary>
public sealed record ExchangeLogEntry(ExchangeLogKind Kind, ProcessingRequest? Request, ProcessingResponse? Response, string? Note)
{
    public override string ToString() => Kind switch
    {
        ExchangeLogKind.Sent => $"-> {Request!.RequestCase}",
        ExchangeLogKind.Received => $"<- {Response!.ResponseCase}",
        _ => $"{Kind} {Note}",
    };
}

/// <summary>A downstream request for <see cref="EnvoyEmulator.Start"/> (the streaming API).</summary>
public sealed class DownstreamRequest
{
    /// <summary>Post-HCM request headers, pseudo-headers first (<c>:scheme :method :authority :path</c>).</summary>
    public required HttpHeaderList Headers { get; init; }

    public bool EndStreamOnHeaders { get; init; }

    /// <summary>Body frames: <see cref="DataFrame"/>s, the last with EndStream, or a final <see cref="TrailersFrame"/>.
    /// Ignored when <see cref="EndStreamOnHeaders"/>.</summary>
    public IAsyncEnumerable<HttpFrame>? Body { get; init; }

    /// <summary>Attribute values keyed by expression text; <c>request.*</c>/<c>response.code*</c> basics are
    /// computed when absent. <c>response.*</c> expressions are never available on the request path.</summary>
    public Dictionary<string, Value> AttributeValues { get; init; } = [];

    /// <summary>The stream's dynamic metadata before the filter runs (untyped and typed).</summary>
    public Dictionary<string, Struct> DynamicMetadata { get; init; } = [];

    public Dictionary<string, Any> TypedDynamicMetadata { get; init; } = [];
}

/// <summary>How the test request ends.</summary>
public enum BodyEnd
{
    /// <summary>END_STREAM on the last body chunk (or on headers when there are no chunks).</summary>
    OnLastChunk,

    /// <summary>END_STREAM on headers; chunks are ignored.</summary>
    OnHeaders,

    /// <summary>An extra empty DATA frame carries END_STREAM.</summary>
    EmptyFinalData,
}

/// <summary>A buffered test request for <see cref="EnvoyEmulator.ExchangeAsync"/>.</summary>
public sealed class TestRequest
{
    public required HttpHeaderList Headers { get; init; }

    public List<byte[]> BodyChunks { get; init; } = [];

    public BodyEnd End { get; init; } = BodyEnd.OnLastChunk;

    public HttpHeaderList? Trailers { get; init; }

    /// <summary>Delay before each body chunk after the first (lets tests interleave with the processor).</summary>
    public TimeSpan ChunkDelay { get; init; }

    /// <summary>When set, each chunk after the first waits for this gate (e.g. a processor-side signal).</summary>
    public Func<int, Task>? BeforeChunk { get; init; }

    public Dictionary<string, Value> AttributeValues { get; init; } = [];

    public Dictionary<string, Struct> DynamicMetadata { get; init; } = [];

    public Dictionary<string, Any> TypedDynamicMetadata { get; init; } = [];

    public static HttpHeaderList DefaultHeaders(string method, string path, string authority = "host") =>
        HttpHeaderList.Of((":scheme", "http"), (":method", method), (":authority", authority), (":path", path),
            ("x-forwarded-proto", "http"));

    public static TestRequest Get(string path = "/", string authority = "host") =>
        new() { Headers = DefaultHeaders("GET", path, authority) };

    public static TestRequest Post(string path, params string[] chunks) =>
        new()
        {
            Headers = DefaultHeaders("POST", path),
            BodyChunks = [.. chunks.Select(c => Encoding.UTF8.GetBytes(c))],
            End = chunks.Length == 0 ? BodyEnd.EmptyFinalData : BodyEnd.OnLastChunk,
        };
}

/// <summary>Everything one buffered exchange produced.</summary>
public sealed class ExchangeResult
{
    /// <summary>Whether the router contacted the upstream at all.</summary>
    public required bool UpstreamContacted { get; init; }

    public string? UpstreamCluster { get; init; }

    public HttpHeaderList? UpstreamHeaders { get; init; }

    public byte[] UpstreamBody { get; init; } = [];

    public HttpHeaderList? UpstreamTrailers { get; init; }

    /// <summary>The upstream request was reset (not ended gracefully).</summary>
    public bool UpstreamReset { get; init; }

    /// <summary>Downstream <c>:status</c>; 0 when the stream was reset before headers.</summary>
    public int Status { get; init; }

    public HttpHeaderList? ResponseHeaders { get; init; }

    public byte[] Body { get; init; } = [];

    public HttpHeaderList? Trailers { get; init; }

    /// <summary>The downstream stream ended in a reset.</summary>
    public bool Reset { get; init; }

    public string? ResetReason { get; init; }

    /// <summary><c>%RESPONSE_CODE_DETAILS%</c>: local-reply details or <c>via_upstream</c>.</summary>
    public string? Details { get; init; }

    public required ExtProcStats Stats { get; init; }

    public required IReadOnlyDictionary<string, Struct> DynamicMetadata { get; init; }

    public required IReadOnlyList<ExchangeLogEntry> Log { get; init; }

    /// <summary>How often the route was (re-)selected; 2 means one route-cache clear took effect.</summary>
    public int RouteSelections { get; init; }

    public string BodyText => Encoding.UTF8.GetString(Body);

    public string UpstreamBodyText => Encoding.UTF8.GetString(UpstreamBody);

    public IReadOnlyList<ProcessingRequest> Sent =>
        [.. Log.Where(e => e.Kind == ExchangeLogKind.Sent).Select(e => e.Request!)];

    public IReadOnlyList<ProcessingResponse> Received =>
        [.. Log.Where(e => e.Kind == ExchangeLogKind.Received).Select(e => e.Response!)];
}
