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

    /// <summary>Rewrites the body's model when the target knows the model by another name.</summary>
    public static void WriteBody(ProcessingContext context, Target target)
    {
        var request = context.Request;
        if (request is null || context.Protocol == ProtocolKind.Gemini || string.Equals(request.Model, target.UpstreamModel, StringComparison.Ordinal))
        {
            return;
        }

        var body = context.RequestBody.Replacement ?? context.RequestBody.Content;
        var writer = new PooledBufferWriter(body.Length + target.UpstreamModelBytes.Length + 16);
        TopLevelFieldRewriter.SetString(body.Span, ModelField, target.UpstreamModelBytes, writer);
        context.RequestBody.Replace(writer);
    }

    /// <summary>The target's endpoint, keeping the client's query (credentials in a query were refused by the auth stage).</summary>
    internal static string BuildPath(ProcessingContext context, Target target)
    {
        var provider = target.Provider.Config;
        var query = "";
        var streamMethod = false;
        if (context.RequestHeaders.TryGetSingle(":path", out var raw))
        {
            var path = Encoding.ASCII.GetString(raw.Span);
            var mark = path.IndexOf('?', StringComparison.Ordinal);
            if (mark >= 0)
            {
                query = path[(mark + 1)..];
                path = path[..mark];
            }

            streamMethod = path.EndsWith(":streamGenerateContent", StringComparison.Ordinal);
        }

        var endpoint = provider.Schema switch
        {
            WireSchema.Anthropic => provider.BasePath + "/messages",
            WireSchema.Gemini => provider.BasePath + "/models/" + Uri.EscapeDataString(target.UpstreamModel)
                + (streamMethod ? ":streamGenerateContent" : ":generateContent"),
            _ => provider.BasePath + "/chat/completions",
        };
        if (provider.Query is { } extra)
        {
            query = query.Length == 0 ? extra : query + "&" + extra;
        }

        return query.Length == 0 ? endpoint : endpoint + "?" + query;
    }
}
