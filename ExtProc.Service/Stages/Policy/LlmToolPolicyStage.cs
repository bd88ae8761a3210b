using System.Buffers;
using ExtProc.Observability;
using ExtProc.Pipeline;
using ExtProc.Pipeline.Errors;
using ExtProc.Protocols;
using ExtProc.Protocols.Sse;
using ExtProc.Stages.Identify;
using ExtProc.Tenancy;

namespace ExtProc.Stages.Policy;

/// <summary>
/// One tool policy for LLM and MCP traffic: the tenant's tool allowlist (policy.mcp.tools, the list MCP
/// tools/call obeys) decides which tools an LLM request may declare (refused, or stripped per config) and
/// which tool calls a model answer may carry (flagged, or blocked per config), so a model cannot be steered
/// into calling a tool the tenant may not call through MCP.
/// </summary>
internal sealed class LlmToolPolicyStage : Stage
{
    public static readonly GatewayError ToolNotAllowed = new(403, "tool_not_allowed");
    public static readonly GatewayError ToolCallNotAllowed = new(502, "tool_call_not_allowed");

    private readonly ILogger _logger;
    private readonly ExtProcMetrics _metrics;

    public LlmToolPolicyStage(ILogger logger, ExtProcMetrics metrics)
    {
        _logger = logger;
        _metrics = metrics;
    }

    public override string Name => "llm-tools";

    public override ValueTask<StageResult> OnRequestBodyAsync(ProcessingContext context)
    {
        if (context.Identity?.Policy is not { RestrictsTools: true } policy || context.Request is not { } request)
        {
            return StageResult.ContinueTask;
        }

        if (request.ToolChoiceName is { } forced && !policy.AllowsMcpTool(forced))
        {
            return DenyAsync(context, "tool_choice names a tool this tenant may not use.");
        }

        var tools = request.Tools;
        var refused = 0;
        for (var i = 0; i < tools.Count; i++)
        {
            if (!policy.AllowsMcpTool(tools[i].Name))
            {
                refused++;
            }
        }

        if (refused == 0)
        {
            return StageResult.ContinueTask;
        }

        // Gemini nests declarations in several arrays; stripping is done for the flat OpenAI/Anthropic list.
        if (!policy.StripsLlmTools || refused == tools.Count || context.Protocol == ProtocolKind.Gemini)
        {
            return DenyAsync(context, "The request declares a tool this tenant may not use.");
        }

        context.RequestBody.Replace(Strip(context.RequestBody.Content.Span, request, policy));
        return StageResult.ContinueTask;
    }

    public override ValueTask<StageResult> OnResponseHeadersAsync(ProcessingContext context)
    {
        if (context.Identity?.Policy is not { RestrictsTools: true } policy || context.Request is not { Tools.Count: > 0 }
            || context.ResponseHeaders is not { } headers)
        {
            return StageResult.ContinueTask;
        }

        headers.TryGetSingle(":status", out var status);
        if (!status.Span.SequenceEqual("200"u8))
        {
            return StageResult.ContinueTask;
        }

        headers.TryGetSingle("content-type", out var contentType);
        if (ProtocolIdentificationStage.IsJson(contentType.Span))
        {
            context.ResponseBody.Needed = true;
            context.ResponseBodyHandling = ResponseBodyHandling.Buffered;
        }
        else if (context.ResponseRewriter is null && IsEventStream(contentType.Span))
        {
            // Streamed answers are watched event by event; their headers have left, so a call is logged only.
            context.ResponseBodyHandling = ResponseBodyHandling.Streamed;
            context.ResponseRewriter = new SseDataRewriter(new StreamWatch(this, context, policy), 1024 * 1024);
        }

        return StageResult.ContinueTask;
    }

    public override ValueTask<StageResult> OnResponseBodyAsync(ProcessingContext context)
    {
        if (context.Identity?.Policy is not { RestrictsTools: true } policy || context.Request is not { Tools.Count: > 0 } || !context.ResponseBody.Needed)
        {
            return StageResult.ContinueTask;
        }

        var names = new List<string>();
        if (!context.ResponseBody.Complete || !ToolCallReader.TryRead(context.ResponseBody.Content.Span, context.Protocol, names))
        {
            return StageResult.ContinueTask;
        }

        var violation = FirstRefused(policy, names);
        if (violation is null)
        {
            return StageResult.ContinueTask;
        }

        Flag(context, violation);
        if (policy.BlocksLlmToolCalls)
        {
            return new(StageResult.Respond(ErrorResponses.Create(context, ToolCallNotAllowed,
                "The model called a tool this tenant may not use; the answer was withheld.")));
        }

        context.ResponseMutations.Set("x-extproc-tool-violation", "true");
        return StageResult.ContinueTask;
    }

    private static bool IsEventStream(ReadOnlySpan<byte> contentType)
    {
        var semicolon = contentType.IndexOf((byte)';');
        var mediaType = (semicolon >= 0 ? contentType[..semicolon] : contentType).Trim((byte)' ');
        return System.Text.Ascii.EqualsIgnoreCase(mediaType, "text/event-stream"u8);
    }

    private static string? FirstRefused(EffectivePolicy policy, List<string> names)
    {
        foreach (var name in names)
        {
            if (!policy.AllowsMcpTool(name))
            {
                return name;
            }
        }

        return null;
    }

    private void Flag(ProcessingContext context, string tool)
    {
        _metrics.AuthDenied(ToolCallNotAllowed.Code);
        McpLog.ToolCallFlagged(_logger, context.RequestId, context.Identity?.Tenant.Id ?? "-", tool.Length > 64 ? tool[..64] : tool);
    }

    /// <summary>The body without the refused tool definitions: the bytes around the kept ones stay as sent.</summary>
    private static ReadOnlyMemory<byte> Strip(ReadOnlySpan<byte> body, RequestSummary request, EffectivePolicy policy)
    {
        var tools = request.Tools;
        var first = tools[0].Offset;
        var last = tools[^1].Offset + tools[^1].Length;
        var output = new ArrayBufferWriter<byte>(body.Length);
        output.Write(body[..first]);
        var written = 0;
        for (var i = 0; i < tools.Count; i++)
        {
            if (!policy.AllowsMcpTool(tools[i].Name))
            {
                continue;
            }

            if (written++ > 0)
            {
                output.Write(","u8);
            }

            output.Write(body.Slice(tools[i].Offset, tools[i].Length));
        }

        output.Write(body[last..]);
        return output.WrittenMemory;
    }

    private ValueTask<StageResult> DenyAsync(ProcessingContext context, string message)
    {
        _metrics.AuthDenied(ToolNotAllowed.Code);
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            TenancyLog.PolicyDenied(_logger, context.RequestId, context.Identity?.Tenant.Id ?? "-", ToolNotAllowed.Code);
        }

        return new(StageResult.Respond(ErrorResponses.Create(context, ToolNotAllowed, message)));
    }

    /// <summary>Reads each streamed event for tool calls; never changes the stream.</summary>
    private sealed class StreamWatch : ISseDataTransform
    {
        private readonly LlmToolPolicyStage _stage;
        private readonly ProcessingContext _context;
        private readonly EffectivePolicy _policy;
        private readonly List<string> _names = [];

        public StreamWatch(LlmToolPolicyStage stage, ProcessingContext context, EffectivePolicy policy)
        {
            _stage = stage;
            _context = context;
            _policy = policy;
        }

        public byte[]? Transform(ReadOnlySpan<byte> data)
        {
            _names.Clear();
            if (ToolCallReader.TryRead(data, _context.Protocol, _names) && FirstRefused(_policy, _names) is { } tool)
            {
                _stage.Flag(_context, tool);
            }

            return null;
        }
    }
}
