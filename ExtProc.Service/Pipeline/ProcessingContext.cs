using System.Text;
using ExtProc.Protocols;
using ExtProc.Tenancy;

namespace ExtProc.Pipeline;

/// <summary>
/// Per-stream state: one per ext_proc stream, so one per HTTP request (per attempt when ExtProc runs
/// as an upstream filter). Stages read it and write their decisions and mutations into it. Not thread-safe.
/// </summary>
internal sealed class ProcessingContext : IDisposable
{
    private string? _requestId;

    public ProcessingContext(HttpHeaderList requestHeaders)
    {
        RequestHeaders = requestHeaders;
    }

    public HttpHeaderList RequestHeaders { get; }

    /// <summary>Null until the response headers arrive.</summary>
    public HttpHeaderList? ResponseHeaders { get; internal set; }

    public HttpHeaderList? RequestTrailers { get; internal set; }

    public HttpHeaderList? ResponseTrailers { get; internal set; }

    public BodyState RequestBody { get; } = new();

    public BodyState ResponseBody { get; } = new();

    /// <summary>Edits to the request headers (sent to the upstream).</summary>
    public HeaderMutationBuilder RequestMutations { get; } = new();

    /// <summary>Edits to the response headers (sent to the client).</summary>
    public HeaderMutationBuilder ResponseMutations { get; } = new();

    /// <summary>Set when a request header edit changes the route (cluster-selection header).</summary>
    public bool ClearRouteCache { get; set; }

    /// <summary>False for traffic we do not govern: it then costs one round trip and no body.</summary>
    public bool Governed { get; set; } = true;

    public ProtocolKind Protocol
    {
        get => Decision.Protocol;
        set => Decision.Protocol = value;
    }

    public DecisionRecord Decision { get; } = new();

    /// <summary>Who is calling, once the auth stage has decided; null for requests it let pass unauthenticated.</summary>
    public CallerIdentity? Identity { get; set; }

    /// <summary>The parsed LLM request, once the body has been read (null for other protocols).</summary>
    public RequestSummary? Request { get; set; }

    /// <summary>The MCP JSON-RPC message of a POST, once read.</summary>
    public Protocols.Mcp.JsonRpcMessage? Mcp { get; set; }

    /// <summary>The routing decision for this request or attempt, once the routing stage has made it.</summary>
    public Routing.RouteState? Route { get; set; }

    /// <summary>
    /// True when this stream is one attempt of ExtProc running as an upstream filter: only there does Envoy
    /// know the upstream host, whose metadata names the provider.
    /// </summary>
    public bool IsUpstreamAttempt => Attributes.ContainsKey(Routing.RoutingAttributes.AttemptProvider);

    /// <summary>What the MCP stage keeps between the phases of one MCP request (session, in-flight lease).</summary>
    public Stages.Mcp.McpExchange? McpExchange { get; set; }

    /// <summary>When set, a STREAMED response body goes through it chunk by chunk (an SSE tools/list).</summary>
    public IStreamedBodyRewriter? ResponseRewriter { get; set; }

    /// <summary>Envoy request attributes (CEL expression text → value as text), first message only.</summary>
    public IReadOnlyDictionary<string, string> Attributes { get; internal set; } = EmptyAttributes;

    /// <summary>Envoy's x-request-id when present, else one we made; used in error bodies and logs.</summary>
    public string RequestId => _requestId ??= ReadRequestId();

    public ProcessingPhase Phase { get; internal set; }

    /// <summary>What the limits stage reserved for this request, until it is settled.</summary>
    public Stages.Limits.LimitLease? Limits { get; set; }

    /// <summary>Where the answer of a request the cache missed is to be stored, until it is (or cannot be).</summary>
    public Stages.Cache.CacheExchange? Cache { get; set; }

    /// <summary>The mode the client asked for the response body, e.g. STREAMED for an SSE response.</summary>
    public ResponseBodyHandling ResponseBodyHandling { get; set; }

    public void Dispose()
    {
        RequestBody.Dispose();
        ResponseBody.Dispose();
        (ResponseRewriter as IDisposable)?.Dispose();
        McpExchange?.Dispose();
    }

    private static readonly Dictionary<string, string> EmptyAttributes = [];

    private string ReadRequestId()
    {
        if (RequestHeaders.TryGetSingle("x-request-id", out var raw) && raw.Length is > 0 and <= 128)
        {
            var span = raw.Span;
            var printable = true;
            foreach (var b in span)
            {
                if (b is < 0x21 or > 0x7e)
                {
                    printable = false;
                    break;
                }
            }

            if (printable)
            {
                return Encoding.ASCII.GetString(span);
            }
        }

        return Guid.NewGuid().ToString("N");
    }
}

/// <summary>How a stage wants the response body delivered once response headers are known.</summary>
internal enum ResponseBodyHandling
{
    /// <summary>Keep whatever Envoy is configured to do.</summary>
    AsConfigured,

    /// <summary>Do not send the response body to ExtProc.</summary>
    Skip,

    /// <summary>Chunk by chunk (e.g. SSE), each chunk answered in order.</summary>
    Streamed,

    /// <summary>The whole body in one message.</summary>
    Buffered,
}
