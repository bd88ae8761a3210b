using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using ExtProc.Observability;
using ExtProc.Pipeline;
using ExtProc.Pipeline.Errors;
using ExtProc.Protocols;
using ExtProc.Protocols.Mcp;
using ExtProc.Protocols.Sse;
using ExtProc.Stages.Identify;
using ExtProc.Storage;
using ExtProc.Tenancy;
using ExtProc.Tenancy.Config;

namespace ExtProc.Stages.Mcp;

/// <summary>
/// Governs MCP over Streamable HTTP (shared/specs/mcp.md): a session is usable only by the identity that
/// initialised it, and an unknown or foreign one gets the same 404; methods and tools are allowed by the
/// caller's policy (a refused tools/call is answered like an unknown tool, with the request's id, and never
/// reaches the server); one id is in flight once per session; the 2026-07-28 routing headers must equal the
/// body; tools/list answers are filtered by the same decision, as JSON or event by event as SSE.
/// </summary>
internal sealed class McpGovernanceStage : Stage
{
    private static readonly string[] KnownVersions = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];

    // Lifecycle and flow control every session needs, whatever the method list says.
    private static readonly string[] AlwaysAllowed =
    [
        "initialize", "server/discover", "ping", "notifications/initialized", "notifications/cancelled", "notifications/progress",
        "notifications/roots/list_changed",
    ];

    // Messages only a server sends: a client sending them is refused (mcp.md §10.3 B11).
    private static readonly string[] ServerOnly =
    [
        "sampling/createMessage", "elicitation/create", "roots/list", "notifications/message",
        "notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed",
        "notifications/resources/updated", "notifications/elicitation/complete",
    ];

    // The header Envoy's routes select a cluster by (envoy/envoy.yaml, cluster_header).
    private const string ClusterHeader = "x-extproc-cluster";

    private readonly McpGovernanceState _state;
    private readonly IMcpSessionStore _sessions;
    private readonly McpConfig _config;
    private readonly McpRouteTable _routes;
    private readonly ILogger _logger;
    private readonly ExtProcMetrics _metrics;

    public McpGovernanceStage(McpGovernanceState state, McpConfig config, ILogger logger, ExtProcMetrics metrics)
    {
        _state = state;
        _sessions = state.SessionsFor(config.Sessions);
        _config = config;
        _routes = new McpRouteTable(config);
        _logger = logger;
        _metrics = metrics;
    }

    public override string Name => "mcp";

    public override ValueTask<StageResult> OnRequestHeadersAsync(ProcessingContext context)
    {
        if (context.Protocol != ProtocolKind.Mcp)
        {
            return StageResult.ContinueTask;
        }

        var headers = context.RequestHeaders;
        if (!AllowsHostAndOrigin(headers))
        {
            return DenyAsync(context, McpErrors.ForbiddenHost, JsonRpcErrors.InvalidRequest, "Forbidden Host or Origin.");
        }

        var exchange = new McpExchange { Owner = OwnerOf(context.Identity), Server = ServerOf(context) };
        context.McpExchange = exchange;
        exchange.IsDelete = headers.TryGetSingle(":method", out var method) && method.Span.SequenceEqual("DELETE"u8);
        exchange.Route = _routes.Find(exchange.Server);
        if (exchange.Route?.Cluster is { } cluster)
        {
            RouteTo(context, cluster);
        }

        if (headers.Contains("mcp-protocol-version"))
        {
            if (!headers.TryGetSingle("mcp-protocol-version", out var version) || !IsKnownVersion(version.Span))
            {
                return DenyAsync(context, McpErrors.UnsupportedVersion, JsonRpcErrors.InvalidRequest, "Unsupported MCP-Protocol-Version.");
            }
        }

        if (!headers.Contains("mcp-session-id"))
        {
            return StageResult.ContinueTask;
        }

        if (!headers.TryGetSingle("mcp-session-id", out var session) || !IsValidSessionId(session.Span))
        {
            return DenyAsync(context, McpErrors.InvalidSessionId, JsonRpcErrors.InvalidRequest, "Invalid Mcp-Session-Id header.");
        }

        exchange.SessionHash = Hash(session.Span);
        var pending = _sessions.GetOwnerAsync(exchange.SessionHash);
#pragma warning disable VSTHRD103 // completed synchronously: reading the result does not block
        return pending.IsCompletedSuccessfully
            ? CheckOwnerNowAsync(context, exchange, pending.Result)
            : CheckOwnerAsync(context, exchange, pending);
#pragma warning restore VSTHRD103
    }

    public override ValueTask<StageResult> OnRequestBodyAsync(ProcessingContext context)
    {
        if (context.Protocol != ProtocolKind.Mcp || context.Mcp is not { } message || context.McpExchange is not { } exchange)
        {
            return StageResult.ContinueTask;
        }

        var headerCheck = CheckRoutingHeaders(context, message);
        if (headerCheck.IsRespond)
        {
            return new(headerCheck);
        }

        if (message.Kind == JsonRpcKind.Response)
        {
            // Answers to the server's own requests (sampling, elicitation, roots) go back on their session.
            return StageResult.ContinueTask;
        }

        var methodName = message.Method!;
        var isRequest = message.Kind == JsonRpcKind.Request;
        if (Contains(ServerOnly, methodName))
        {
            return isRequest
                ? DenyAsync(context, McpErrors.MethodNotAllowed, McpErrors.MethodNotFound, "Method not found", message.IdJson)
                : DenyAsync(context, McpErrors.WrongDirection, JsonRpcErrors.InvalidRequest, "This notification is sent by servers only.");
        }

        if (methodName == "initialize" && exchange.SessionHash is not null)
        {
            return DenyAsync(context, McpErrors.SessionReinitialize, JsonRpcErrors.InvalidRequest, "initialize cannot be sent on an existing session.", message.IdJson);
        }

        var policy = context.Identity?.Policy;
        if (policy is not null && !Contains(AlwaysAllowed, methodName) && !policy.AllowsMcpMethod(methodName))
        {
            if (!isRequest)
            {
                Log(context, McpErrors.MethodNotAllowed.Code, methodName);
                return new(StageResult.Respond(McpErrors.Dropped()));
            }

            return DenyAsync(context, McpErrors.MethodNotAllowed, McpErrors.MethodNotFound, "Method not found", message.IdJson);
        }

        if (policy is not null && methodName == "tools/call")
        {
            var refusal = CheckToolCall(context, exchange, policy, message);
            if (refusal.IsRespond)
            {
                return new(refusal);
            }
        }

        if (policy is not null && methodName == "prompts/get" && !policy.AllowsMcpPrompt(message.Target ?? ""))
        {
            return DenyAsync(context, McpErrors.UnknownTool, McpErrors.InvalidParams, "Unknown prompt: " + ErrorResponses.Printable(message.Target ?? ""), message.IdJson);
        }

        if (policy is not null && methodName is "resources/read" or "resources/subscribe" && !policy.AllowsMcpResource(message.Target ?? ""))
        {
            return DenyAsync(context, McpErrors.UnknownTool, McpErrors.ResourceNotFound, "Resource not found", message.IdJson);
        }

        if (methodName == "tools/call" && exchange.Route?.Tools is { } table)
        {
            // Several servers: the exposed name selects the server and is replaced by the server's own name.
            if (message.Target is not { } exposed || !table.TryGetValue(exposed, out var routed))
            {
                return DenyAsync(context, McpErrors.UnknownTool, McpErrors.InvalidParams, "Unknown tool: " + ErrorResponses.Printable(message.Target ?? ""), message.IdJson);
            }

            RouteTo(context, routed.Cluster);
            context.RequestBody.Replace(JsonRpcParams.ReplaceName(context.RequestBody.Content.Span, routed.Tool));
        }

        if (isRequest && exchange.SessionHash is not null)
        {
            exchange.InFlight = _state.InFlight.TryStart(exchange.SessionHash, message.IdJson!);
            if (exchange.InFlight is null)
            {
                return DenyAsync(context, McpErrors.DuplicateInFlight, JsonRpcErrors.InvalidRequest,
                    "A request with this id is already in flight on this session.", message.IdJson);
            }
        }

        (exchange.FilterTools, exchange.ListKind) = methodName switch
        {
            "tools/list" => (policy is { FiltersMcpTools: true }, McpListKind.Tools),
            "prompts/list" => (policy is { RestrictsMcpPrompts: true }, McpListKind.Prompts),
            "resources/list" => (policy is { RestrictsMcpResources: true }, McpListKind.Resources),
            _ => (false, McpListKind.Tools),
        };
        return StageResult.ContinueTask;
    }

    public override ValueTask<StageResult> OnResponseHeadersAsync(ProcessingContext context)
    {
        if (context.Protocol != ProtocolKind.Mcp || context.McpExchange is not { } exchange || context.ResponseHeaders is not { } headers)
        {
            return StageResult.ContinueTask;
        }

        var status = Status(headers);
        var success = status is >= 200 and < 300;
        if (exchange.SessionHash is not null && (status == 404 || (exchange.IsDelete && success)))
        {
            // The server ended the session (or does not know it): the binding goes with it.
            return RemoveThenContinueAsync(_sessions.RemoveAsync(exchange.SessionHash), context, exchange, success);
        }

        if (success && context.Mcp?.Method == "initialize" && headers.Contains("mcp-session-id"))
        {
            if (!headers.TryGetSingle("mcp-session-id", out var minted) || !IsValidSessionId(minted.Span))
            {
                return UpstreamAsync(context, "The MCP server returned an invalid session id.");
            }

            var bind = _sessions.BindAsync(Hash(minted.Span), exchange.Owner);
#pragma warning disable VSTHRD103 // completed synchronously: reading the result does not block
            return bind.IsCompletedSuccessfully ? AfterBindNowAsync(context, exchange, bind.Result) : AfterBindAsync(context, exchange, bind);
#pragma warning restore VSTHRD103
        }

        return new(ChooseListHandling(context, exchange, success));
    }

    public override ValueTask<StageResult> OnResponseBodyAsync(ProcessingContext context)
    {
        if (context.McpExchange is not { FilterTools: true } exchange || !context.ResponseBody.Needed || context.Identity is not { } identity)
        {
            return StageResult.ContinueTask;
        }

        if (!context.ResponseBody.Complete)
        {
            return UpstreamAsync(context, "The MCP server's tool list is larger than the gateway can check.");
        }

        var output = new ArrayBufferWriter<byte>(Math.Max(context.ResponseBody.Length, 256));
        var filter = new ToolListPolicy(this, identity, exchange.Server, exchange.ListKind);
        switch (ToolListFilter.Filter(context.ResponseBody.Content.Span, exchange.ListKind, filter, output))
        {
            case ToolListOutcome.Filtered:
                context.ResponseBody.Replace(output.WrittenMemory);
                break;
            case ToolListOutcome.Invalid:
                McpLog.ListUnreadable(_logger, context.RequestId, "invalid JSON or duplicate keys");
                return UpstreamAsync(context, "The MCP server's tool list could not be checked.");
        }

        return StageResult.ContinueTask;
    }

    private StageResult ChooseListHandling(ProcessingContext context, McpExchange exchange, bool success)
    {
        if (!exchange.FilterTools || !success || context.Identity is not { } identity)
        {
            exchange.FilterTools = false;
            return StageResult.Continue;
        }

        context.ResponseHeaders!.TryGetSingle("content-type", out var contentType);
        if (ProtocolIdentificationStage.IsJson(contentType.Span))
        {
            context.ResponseBody.Needed = true;
            context.ResponseBodyHandling = ResponseBodyHandling.Buffered;
            return StageResult.Continue;
        }

        if (IsEventStream(contentType.Span))
        {
            // Streamed and rewritten event by event: the list event is filtered, everything else flows as it comes.
            context.ResponseBodyHandling = ResponseBodyHandling.Streamed;
            context.ResponseRewriter = new SseDataRewriter(new ToolListEvents(this, context, identity, exchange.Server, exchange.ListKind), 4 * 1024 * 1024);
            return StageResult.Continue;
        }

        // A list the gateway cannot read must not reach a caller whose view is filtered.
        McpLog.ListUnreadable(_logger, context.RequestId, "unknown content type");
        return StageResult.Respond(McpErrors.Create(context, McpErrors.UpstreamInvalid, McpErrors.InternalError,
            "The MCP server's tool list could not be checked.", context.Mcp?.IdJson));
    }

    private StageResult CheckToolCall(ProcessingContext context, McpExchange exchange, EffectivePolicy policy, JsonRpcMessage message)
    {
        var tool = message.Target;
        if (tool is null)
        {
            return DenyResult(context, McpErrors.UnknownTool, McpErrors.InvalidParams, "tools/call needs params.name.", message.IdJson);
        }

        if (policy.McpMaxArgumentBytes is { } cap && message.ArgumentsBytes > cap)
        {
            return DenyResult(context, McpErrors.ArgumentsTooLarge, McpErrors.InvalidParams, "The tool arguments are larger than allowed.", message.IdJson);
        }

        var tenant = context.Identity!.Tenant.Id;
        var known = _state.Catalog.TryGet(tenant, exchange.Server, tool, out var record);
        var allowed = policy.AllowsMcpTool(tool)
            && (!policy.ChecksDestructiveMcpTools || (known && !record.Destructive) || policy.AllowsDestructiveMcpTool(tool))
            && !(known && record.Changed && policy.BlocksChangedMcpTools);
        return allowed
            ? StageResult.Continue
            : DenyResult(context, McpErrors.UnknownTool, McpErrors.InvalidParams, "Unknown tool: " + ErrorResponses.Printable(tool), message.IdJson);
    }

    /// <summary>The one decision list filtering and call enforcement share (mcp.md §0.6).</summary>
    private bool Shows(EffectivePolicy policy, string tenant, string server, in ListedTool tool)
    {
        var changed = _state.Catalog.Learn(tenant, server, tool.Name, ToolCanonicalForm.Hash(tool.Definition), tool.Annotations);
        if (changed)
        {
            McpLog.ToolChanged(_logger, ErrorResponses.Printable(tool.Name), server, tenant, policy.BlocksChangedMcpTools);
        }

        _state.Catalog.TryGet(tenant, server, tool.Name, out var record);
        return policy.AllowsMcpTool(tool.Name)
            && (!policy.ChecksDestructiveMcpTools || !record.Destructive || policy.AllowsDestructiveMcpTool(tool.Name))
            && !(changed && policy.BlocksChangedMcpTools);
    }

    private StageResult CheckRoutingHeaders(ProcessingContext context, JsonRpcMessage message)
    {
        var headers = context.RequestHeaders;
        var modern = headers.TryGetSingle("mcp-protocol-version", out var version) && version.Span.SequenceEqual("2026-07-28"u8);
        if (message.Kind == JsonRpcKind.Response)
        {
            return StageResult.Continue;
        }

        if (headers.Contains("mcp-method") || modern)
        {
            if (!headers.TryGetSingle("mcp-method", out var method) || !HeaderEquals(method.Span, message.Method))
            {
                return DenyResult(context, McpErrors.HeaderBodyMismatch, McpErrors.HeaderMismatch, "Mcp-Method does not match the body.", message.IdJson);
            }
        }

        var named = message.Method is "tools/call" or "prompts/get" or "resources/read";
        if (headers.Contains("mcp-name") || (modern && named))
        {
            if (!headers.TryGetSingle("mcp-name", out var name) || !HeaderEquals(name.Span, message.Target))
            {
                return DenyResult(context, McpErrors.HeaderBodyMismatch, McpErrors.HeaderMismatch, "Mcp-Name does not match the body.", message.IdJson);
            }
        }

        return StageResult.Continue;
    }

    /// <summary>
    /// DNS-rebinding defence (MCP transport, Origin validation): the addressed host must be allowed, and a
    /// browser's Origin must be an allowed origin, or name an allowed host, or (nothing configured) the
    /// addressed host itself.
    /// </summary>
    private bool AllowsHostAndOrigin(HttpHeaderList headers)
    {
        headers.TryGetSingle(":authority", out var authorityRaw);
        var host = HostOf(Encoding.ASCII.GetString(authorityRaw.Span));
        if (_config.AllowedHosts is { } hosts && !ContainsIgnoreCase(hosts, host))
        {
            return false;
        }

        if (!headers.Contains("origin"))
        {
            return true;
        }

        if (!headers.TryGetSingle("origin", out var originRaw))
        {
            return false;
        }

        var origin = Encoding.ASCII.GetString(originRaw.Span);
        if (_config.AllowedOrigins is { } origins)
        {
            return ContainsIgnoreCase(origins, origin);
        }

        if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            return false;
        }

        var originHost = uri.HostNameType == UriHostNameType.IPv6 ? "[" + uri.IdnHost.Trim('[', ']') + "]" : uri.IdnHost;
        return _config.AllowedHosts is { } allowed ? ContainsIgnoreCase(allowed, originHost) : string.Equals(originHost, host, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The host of an authority, without its port (<c>[::1]:80</c> → <c>[::1]</c>).</summary>
    private static string HostOf(string authority)
    {
        if (authority.StartsWith('['))
        {
            var end = authority.IndexOf(']', StringComparison.Ordinal);
            return end > 0 ? authority[..(end + 1)] : authority;
        }

        var colon = authority.IndexOf(':', StringComparison.Ordinal);
        return colon >= 0 ? authority[..colon] : authority;
    }

    private static bool ContainsIgnoreCase(IReadOnlyList<string> list, string value)
    {
        foreach (var item in list)
        {
            if (string.Equals(item, value, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Header value = body value, decoding the <c>=?base64?…?=</c> form; the decision is always from the body.</summary>
    internal static bool HeaderEquals(ReadOnlySpan<byte> header, string? body)
    {
        if (body is null)
        {
            return false;
        }

        if (header.StartsWith("=?base64?"u8) && header.EndsWith("?="u8) && header.Length >= 11)
        {
            var encoded = header[9..^2];
            var decoded = new byte[encoded.Length];
            return System.Buffers.Text.Base64.DecodeFromUtf8(encoded, decoded, out _, out var written) == OperationStatus.Done
                && decoded.AsSpan(0, written).SequenceEqual(Encoding.UTF8.GetBytes(body));
        }

        return header.SequenceEqual(Encoding.UTF8.GetBytes(body));
    }

    private ValueTask<StageResult> CheckOwnerNowAsync(ProcessingContext context, McpExchange exchange, string? owner)
    {
        if (owner is not null && string.Equals(owner, exchange.Owner, StringComparison.Ordinal))
        {
            return StageResult.ContinueTask;
        }

        if (owner is not null)
        {
            McpLog.ForeignSession(_logger, context.RequestId, context.Identity?.Tenant.Id ?? "-", exchange.SessionHash![..12]);
        }

        // Foreign and unknown sessions get the same answer: no oracle for live session ids (faults.md H4).
        exchange.SessionHash = null;
        return DenyAsync(context, McpErrors.SessionUnknown, McpErrors.SessionNotFound, "Session not found");
    }

    private async ValueTask<StageResult> CheckOwnerAsync(ProcessingContext context, McpExchange exchange, ValueTask<string?> pending) =>
        await CheckOwnerNowAsync(context, exchange, await pending.ConfigureAwait(false)).ConfigureAwait(false);

    private ValueTask<StageResult> AfterBindNowAsync(ProcessingContext context, McpExchange exchange, bool bound)
    {
        if (!bound)
        {
            // A server that hands one session id to two identities cannot be governed per identity.
            return UpstreamAsync(context, "The MCP server returned a session id already in use.");
        }

        return new(ChooseListHandling(context, exchange, success: true));
    }

    private async ValueTask<StageResult> AfterBindAsync(ProcessingContext context, McpExchange exchange, ValueTask<bool> pending) =>
        await AfterBindNowAsync(context, exchange, await pending.ConfigureAwait(false)).ConfigureAwait(false);

    private async ValueTask<StageResult> RemoveThenContinueAsync(ValueTask pending, ProcessingContext context, McpExchange exchange, bool success)
    {
        await pending.ConfigureAwait(false);
        return ChooseListHandling(context, exchange, success);
    }

    private ValueTask<StageResult> UpstreamAsync(ProcessingContext context, string message) =>
        new(StageResult.Respond(McpErrors.Create(context, McpErrors.UpstreamInvalid, McpErrors.InternalError, message, context.Mcp?.IdJson)));

    private ValueTask<StageResult> DenyAsync(ProcessingContext context, GatewayError error, int rpcCode, string message, string? idJson = null) =>
        new(DenyResult(context, error, rpcCode, message, idJson));

    private StageResult DenyResult(ProcessingContext context, GatewayError error, int rpcCode, string message, string? idJson)
    {
        Log(context, error.Code, context.Mcp?.Method);
        return StageResult.Respond(McpErrors.Create(context, error, rpcCode, message, idJson));
    }

    private void Log(ProcessingContext context, string code, string? method)
    {
        _metrics.AuthDenied(code);
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            McpLog.Denied(_logger, context.RequestId, context.Identity?.Tenant.Id ?? "-", code, method);
        }
    }

    private static void RouteTo(ProcessingContext context, string cluster)
    {
        context.RequestMutations.Set(ClusterHeader, cluster);
        context.ClearRouteCache = true;
    }

    private static string OwnerOf(CallerIdentity? identity) => identity is null
        ? "-"
        : identity.Tenant.Id + "\n" + identity.Kind.ToWireName() + "\n" + (identity.KeyId ?? identity.Subject ?? "");

    private static string ServerOf(ProcessingContext context)
    {
        if (!context.RequestHeaders.TryGetSingle(":path", out var path))
        {
            return "";
        }

        var span = path.Span;
        var query = span.IndexOf((byte)'?');
        return Encoding.UTF8.GetString(query >= 0 ? span[..query] : span);
    }

    private static int Status(HttpHeaderList headers) =>
        headers.TryGetSingle(":status", out var raw) && System.Buffers.Text.Utf8Parser.TryParse(raw.Span, out int status, out _) ? status : 0;

    private static bool IsKnownVersion(ReadOnlySpan<byte> value)
    {
        foreach (var known in KnownVersions)
        {
            if (Encoding.ASCII.GetByteCount(known) == value.Length && value.SequenceEqual(Encoding.ASCII.GetBytes(known)))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Visible ASCII (0x21–0x7E) only, as the spec requires, and of a sane length.</summary>
    internal static bool IsValidSessionId(ReadOnlySpan<byte> value)
    {
        if (value.Length is < 1 or > 256)
        {
            return false;
        }

        foreach (var b in value)
        {
            if (b is < 0x21 or > 0x7e)
            {
                return false;
            }
        }

        return true;
    }

    private static string Hash(ReadOnlySpan<byte> session)
    {
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(session, digest);
        return Convert.ToHexStringLower(digest);
    }

    private static bool IsEventStream(ReadOnlySpan<byte> contentType)
    {
        var semicolon = contentType.IndexOf((byte)';');
        var mediaType = (semicolon >= 0 ? contentType[..semicolon] : contentType).Trim((byte)' ');
        return System.Text.Ascii.EqualsIgnoreCase(mediaType, "text/event-stream"u8);
    }

    private static bool Contains(string[] list, string value)
    {
        foreach (var item in list)
        {
            if (string.Equals(item, value, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The list decision for one response.</summary>
    private sealed class ToolListPolicy : IToolListPolicy
    {
        private readonly McpGovernanceStage _stage;
        private readonly CallerIdentity _identity;
        private readonly string _server;
        private readonly McpListKind _kind;

        public ToolListPolicy(McpGovernanceStage stage, CallerIdentity identity, string server, McpListKind kind)
        {
            _stage = stage;
            _identity = identity;
            _server = server;
            _kind = kind;
        }

        public bool Keep(in ListedTool tool) => _kind switch
        {
            McpListKind.Prompts => _identity.Policy.AllowsMcpPrompt(tool.Name),
            McpListKind.Resources => _identity.Policy.AllowsMcpResource(tool.Name),
            _ => _stage.Shows(_identity.Policy, _identity.Tenant.Id, _server, tool),
        };
    }

    /// <summary>Filters the tool list inside an SSE event; other events pass unchanged.</summary>
    private sealed class ToolListEvents : ISseDataTransform
    {
        private readonly McpGovernanceStage _stage;
        private readonly ProcessingContext _context;
        private readonly ToolListPolicy _policy;
        private readonly McpListKind _kind;

        public ToolListEvents(McpGovernanceStage stage, ProcessingContext context, CallerIdentity identity, string server, McpListKind kind)
        {
            _stage = stage;
            _context = context;
            _policy = new ToolListPolicy(stage, identity, server, kind);
            _kind = kind;
        }

        public byte[]? Transform(ReadOnlySpan<byte> data)
        {
            var output = new ArrayBufferWriter<byte>(Math.Max(data.Length, 256));
            switch (ToolListFilter.Filter(data, _kind, _policy, output))
            {
                case ToolListOutcome.Filtered:
                    return output.WrittenSpan.ToArray();
                case ToolListOutcome.Invalid:
                    McpLog.ListUnreadable(_stage._logger, _context.RequestId, "invalid JSON or duplicate keys in an event");
                    return McpErrors.Create(_context, McpErrors.UpstreamInvalid, McpErrors.InternalError,
                        "The MCP server's tool list could not be checked.", _context.Mcp?.IdJson).Body.ToArray();
                default:
                    return null;
            }
        }
    }
}
