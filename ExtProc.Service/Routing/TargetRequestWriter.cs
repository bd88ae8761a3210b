using System.Text;
using ExtProc.Buffers;
using ExtProc.Pipeline;
using ExtProc.Protocols;
using ExtProc.Protocols.Json;
using ExtProc.Routing.Config;
using ExtProc.Stages.Auth;

namespace ExtProc.Routing;

/// <summary>
/// Turns the client's request into the target's: <c>:path</c> of the target's endpoint, the provider's
/// credential instead of any client credential, and the upstream model name in the body (re-serialised;
/// content-length follows). The secret goes only to the provider it belongs to.
/// </summary>
internal static class TargetRequestWriter
{
    private static readonly byte[] ModelField = "model"u8.ToArray();

    /// <summary>Sets path and credential headers for <paramref name="target"/>.</summary>
    public static void WriteHeaders(ProcessingContext context, Target target, RoutingCatalog catalog, string tenantId)
    {
        var mutations = context.RequestMutations;
        var provider = target.Provider;
        mutations.Set(":path", BuildPath(context, target));
        foreach (var name in CredentialReader.CredentialHeaders)
        {
            if (context.RequestHeaders.Contains(name))
            {
                mutations.Remove(name);
            }
        }

        if (provider.CredentialHeader is { } header && catalog.CredentialFor(tenantId, provider) is { } credential)
        {
            mutations.Set(header, credential);
        }

        if (provider.AnthropicVersion is { } version && !context.RequestHeaders.Contains(CredentialHeaders.AnthropicVersion))
        {
            mutations.Set(CredentialHeaders.AnthropicVersion, version);
        }
    }

    /// <summary>
    /// The body for <paramref name="target"/>: translated when it speaks another format (null, or the error to
    /// answer), else with the model renamed when the target knows it by another name.
    /// </summary>
    public static Translation.TranslationError? WriteBody(ProcessingContext context, RouteState state, Target target, TimeProvider time)
    {
        if (TranslationBridge.TranslateRequest(context, state, target, time) is { } error)
        {
            return error;
        }

        var request = context.Request;
        if (state.Translation is not null || request is null || context.Protocol == ProtocolKind.Gemini
            || string.Equals(request.Model, target.UpstreamModel, StringComparison.Ordinal))
        {
            return null;
        }

        var body = context.RequestBody.Replacement ?? context.RequestBody.Content;
        var writer = new PooledBufferWriter(body.Length + target.UpstreamModelBytes.Length + 16);
        TopLevelFieldRewriter.SetString(body.Span, ModelField, target.UpstreamModelBytes, writer);
        context.RequestBody.Replace(writer);
        return null;
    }

    /// <summary>
    /// The target's endpoint. The client's query is kept when the target speaks the client's format
    /// (credentials in a query were refused by the auth stage); a Gemini target streams with <c>alt=sse</c>.
    /// </summary>
    internal static string BuildPath(ProcessingContext context, Target target)
    {
        var provider = target.Provider.Config;
        var query = "";
        var stream = context.Request?.Stream ?? false;
        if (context.RequestHeaders.TryGetSingle(":path", out var raw))
        {
            var path = Encoding.ASCII.GetString(raw.Span);
            var mark = path.IndexOf('?', StringComparison.Ordinal);
            if (mark >= 0 && context.Protocol == provider.Protocol)
            {
                query = path[(mark + 1)..];
            }

            if (context.Protocol == ProtocolKind.Gemini)
            {
                stream = (mark >= 0 ? path[..mark] : path).EndsWith(":streamGenerateContent", StringComparison.Ordinal);
            }
        }

        var model = Uri.EscapeDataString(target.UpstreamModel);
        var endpoint = provider.Schema switch
        {
            WireSchema.Anthropic => provider.BasePath + "/messages",
            WireSchema.Gemini => provider.BasePath + "/models/" + model + (stream ? ":streamGenerateContent" : ":generateContent"),
            _ when provider.Dialect == Translation.UpstreamDialect.Azure => provider.BasePath + "/deployments/" + model + "/chat/completions",
            _ => provider.BasePath + "/chat/completions",
        };
        if (provider.Schema == WireSchema.Gemini && stream && !query.Contains("alt=sse", StringComparison.Ordinal))
        {
            query = query.Length == 0 ? "alt=sse" : query + "&alt=sse";
        }

        if (provider.Query is { } extra)
        {
            query = query.Length == 0 ? extra : query + "&" + extra;
        }

        return query.Length == 0 ? endpoint : endpoint + "?" + query;
    }
}
