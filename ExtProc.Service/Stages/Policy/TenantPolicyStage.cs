using ExtProc.Observability;
using ExtProc.Pipeline;
using ExtProc.Pipeline.Errors;
using ExtProc.Protocols;
using ExtProc.Stages.Identify;

namespace ExtProc.Stages.Policy;

/// <summary>
/// Applies the caller's tenant policy (narrowed by its key scope) before any body is forwarded:
/// the model of a Gemini request from its path in the headers phase, the model of OpenAI and
/// Anthropic requests from the request summary the parse stage read from the body. Providers and regions are applied by routing, MCP tools and
/// methods by the MCP stage, limits by the limits stage; all read the same <c>Identity.Policy</c>.
/// </summary>
internal sealed class TenantPolicyStage : Stage
{
    private readonly ILogger _logger;
    private readonly ExtProcMetrics _metrics;

    public TenantPolicyStage(ILogger logger, ExtProcMetrics metrics)
    {
        _logger = logger;
        _metrics = metrics;
    }

    public override string Name => "policy";

    public override ValueTask<StageResult> OnRequestHeadersAsync(ProcessingContext context)
    {
        var identity = context.Identity;
        if (identity is null || context.Protocol != ProtocolKind.Gemini || !identity.Policy.RestrictsModels
            || !context.RequestHeaders.TryGetSingle(":path", out var path))
        {
            return StageResult.ContinueTask;
        }

        Span<byte> buffer = stackalloc byte[Math.Min(path.Length + 1, 2048)];
        if (path.Length + 1 > buffer.Length)
        {
            return DenyAsync(context, GatewayError.InvalidRequest, "The request path is too long.");
        }

        var normalized = buffer[..ProtocolClassifier.NormalizePath(path.Span, buffer)];
        var start = normalized.IndexOf("/models/"u8);
        var rest = normalized[(start + "/models/".Length)..];
        var colon = rest.IndexOf((byte)':');
        var model = System.Text.Encoding.UTF8.GetString(colon < 0 ? rest : rest[..colon]);
        return identity.Policy.AllowsModel(model)
            ? StageResult.ContinueTask
            : DenyAsync(context, GatewayError.ModelNotAllowed, $"The model '{ErrorResponses.Printable(model)}' is not allowed for this tenant.");
    }

    public override ValueTask<StageResult> OnRequestBodyAsync(ProcessingContext context)
    {
        // The parse stage ran before this one and left the strictly-read request in context.Request.
        var identity = context.Identity;
        if (identity is null || context.Protocol is not (ProtocolKind.OpenAiChat or ProtocolKind.AnthropicMessages) || !identity.Policy.RestrictsModels)
        {
            return StageResult.ContinueTask;
        }

        var model = context.Request?.Model;
        if (string.IsNullOrEmpty(model))
        {
            return DenyAsync(context, GatewayError.InvalidRequest, "The request body must name a model.");
        }

        return identity.Policy.AllowsModel(model)
            ? StageResult.ContinueTask
            : DenyAsync(context, GatewayError.ModelNotAllowed, $"The model '{ErrorResponses.Printable(model)}' is not allowed for this tenant.");
    }

    private ValueTask<StageResult> DenyAsync(ProcessingContext context, GatewayError error, string message)
    {
        _metrics.AuthDenied(error.Code);
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            TenancyLog.PolicyDenied(_logger, context.RequestId, context.Identity?.Tenant.Id ?? "-", error.Code);
        }

        return new(StageResult.Respond(ErrorResponses.Create(context, error, message)));
    }
}
