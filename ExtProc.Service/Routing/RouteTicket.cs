using System.Text;

namespace ExtProc.Routing;

/// <summary>
/// The downstream decision as the <c>x-extproc-route</c> request header, read by each upstream attempt:
/// <c>t=&lt;tenant&gt;;k=&lt;key id or -&gt;;m=&lt;public model, percent-encoded&gt;;p=&lt;provider,provider,…&gt;</c>.
/// Only ExtProc writes it: the guard stage removes any client-sent <c>x-extproc-*</c> header before the
/// router runs, and each attempt removes it before the provider sees the request.
/// </summary>
internal readonly record struct RouteTicket(string Tenant, string? KeyId, string Model, string[] Providers)
{
    public static string Encode(string tenant, string? keyId, string model, RoutePlan plan)
    {
        var text = new StringBuilder(64);
        text.Append("t=").Append(tenant).Append(";k=").Append(keyId ?? "-").Append(";m=").Append(Uri.EscapeDataString(model)).Append(";p=");
        for (var i = 0; i < plan.Count; i++)
        {
            text.Append(i == 0 ? "" : ",").Append(plan.Targets[i].Provider.Name);
        }

        return text.ToString();
    }

    /// <summary>A decision for exactly one provider (route mode: Envoy retries stay on the chosen cluster).</summary>
    public static string Encode(string tenant, string? keyId, string model, string provider) =>
        $"t={tenant};k={keyId ?? "-"};m={Uri.EscapeDataString(model)};p={provider}";

    public static bool TryDecode(ReadOnlySpan<byte> value, out RouteTicket ticket)
    {
        ticket = default;
        if (value.Length is 0 or > 4096)
        {
            return false;
        }

        var text = Encoding.ASCII.GetString(value);
        string? tenant = null, key = null, model = null;
        string[]? providers = null;
        foreach (var part in text.Split(';'))
        {
            if (part.Length < 2 || part[1] != '=')
            {
                return false;
            }

            var content = part[2..];
            switch (part[0])
            {
                case 't':
                    tenant = content;
                    break;
                case 'k':
                    key = content == "-" ? null : content;
                    break;
                case 'm':
                    model = Uri.UnescapeDataString(content);
                    break;
                case 'p':
                    providers = content.Length == 0 ? [] : content.Split(',');
                    break;
                default:
                    return false;
            }
        }

        if (tenant is null || model is null || providers is null)
        {
            return false;
        }

        ticket = new RouteTicket(tenant, key, model, providers);
        return true;
    }
}
