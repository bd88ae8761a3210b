using System.Text;
using ExtProc.Pipeline;
using ExtProc.Pipeline.Errors;
using ExtProc.Protocols;
using ExtProc.Protocols.Json;
using ExtProc.Protocols.Mcp;

namespace ExtProc.Stages.Parse;

/// <summary>
/// Reads an LLM request body (or an MCP JSON-RPC message) once, strictly, into the context's <see cref="RequestSummary"/>; every later
/// decision uses that summary. A body that breaks the JSON policy is refused in the caller's dialect, and a
/// body we could not see whole is refused rather than forwarded unchecked.
/// </summary>
internal sealed class RequestParseStage : Stage
{
    private readonly int _maxDepth;

    public RequestParseStage(int maxDepth) => _maxDepth = maxDepth;

    public override string Name => "parse";

    public override ValueTask<StageResult> OnRequestBodyAsync(ProcessingContext context)
    {
        if (context.Protocol is not (ProtocolKind.OpenAiChat or ProtocolKind.AnthropicMessages or ProtocolKind.Gemini or ProtocolKind.Mcp))
        {
            return StageResult.ContinueTask;
        }

        if (!context.RequestBody.Complete)
        {
            return RespondAsync(context, GatewayError.BodyTooLarge, "The request body is larger than the gateway can inspect.");
        }

        if (context.Protocol == ProtocolKind.Mcp)
        {
            return ReadMcpAsync(context);
        }

        var summary = new RequestSummary();
        if (!LlmRequestReader.TryRead(context.RequestBody.Content.Span, context.Protocol, _maxDepth, summary, out var violation))
        {
            return RespondAsync(context, new GatewayError(400, violation.Code), violation.Message);
        }

        if (context.Protocol == ProtocolKind.Gemini)
        {
            summary.Model = GeminiModelFromPath(context);
        }

        context.Request = summary;
        context.Decision.Model = summary.Model;
        return StageResult.ContinueTask;
    }

    private ValueTask<StageResult> ReadMcpAsync(ProcessingContext context)
    {
        var message = new JsonRpcMessage();
        if (!JsonRpcReader.TryRead(context.RequestBody.Content.Span, _maxDepth, message, out var violation))
        {
            // Unreadable JSON is a JSON-RPC parse error; readable JSON that is not a valid message, an
            // invalid request. Either way the id is echoed when it could be read.
            var rpcCode = violation.Kind is JsonViolationKind.InvalidJson or JsonViolationKind.InvalidUtf8
                or JsonViolationKind.InvalidUnicode or JsonViolationKind.MaxDepthExceeded
                ? JsonRpcErrors.ParseError
                : JsonRpcErrors.InvalidRequest;
            return new(StageResult.Respond(JsonRpcErrors.Create(context, new GatewayError(400, violation.Code), rpcCode, violation.Message, message.IdJson)));
        }

        context.Mcp = message;
        context.Decision.McpMethod = message.Method;
        context.Decision.McpTarget = message.Target;
        return StageResult.ContinueTask;
    }

    /// <summary>The model of a Gemini path, <c>.../models/{model}:generateContent</c>.</summary>
    internal static string? GeminiModelFromPath(ProcessingContext context)
    {
        if (!context.RequestHeaders.TryGetSingle(":path", out var raw))
        {
            return null;
        }

        var path = raw.Span;
        var query = path.IndexOf((byte)'?');
        if (query >= 0)
        {
            path = path[..query];
        }

        var models = path.LastIndexOf("/models/"u8);
        if (models < 0)
        {
            return null;
        }

        var name = path[(models + "/models/".Length)..];
        var colon = name.LastIndexOf((byte)':');
        return colon > 0 ? Encoding.UTF8.GetString(name[..colon]) : null;
    }

    private static ValueTask<StageResult> RespondAsync(ProcessingContext context, GatewayError error, string message) =>
        new(StageResult.Respond(ErrorResponses.Create(context, error, message)));
}
