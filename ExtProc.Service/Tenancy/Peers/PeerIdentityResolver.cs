using System.Collections.Frozen;
using ExtProc.Pipeline;
using ExtProc.Tenancy.Config;

namespace ExtProc.Tenancy.Peers;

internal enum PeerStatus
{
    /// <summary>No peer certificate (or none that identifies a tenant).</summary>
    Absent,

    /// <summary>A certificate identity mapped to a tenant.</summary>
    Mapped,

    /// <summary>A certificate whose identity maps to no tenant.</summary>
    Unmapped,

    /// <summary>Control characters, several SPIFFE ids, malformed XFCC: refused (faults.md A7).</summary>
    Invalid,
}

internal readonly record struct PeerResult(PeerStatus Status, Tenant? Tenant, IdentityKind Kind, string? Identity);

/// <summary>
/// Maps the mTLS peer of a request to a tenant, from Envoy's request attributes or, only when the
/// config says Envoy sets it, from <c>x-forwarded-client-cert</c>. SPIFFE ids map exactly or by the
/// longest configured prefix; certificate subjects map exactly.
/// </summary>
internal sealed class PeerIdentityResolver
{
    public const string UriSanAttribute = "connection.uri_san_peer_certificate";
    public const string SubjectAttribute = "connection.subject_peer_certificate";
    public const string XfccHeader = "x-forwarded-client-cert";

    private readonly PeerIdentitySource _source;
    private readonly FrozenDictionary<string, Tenant> _exact;
    private readonly FrozenDictionary<string, Tenant> _subjects;
    private readonly (string Prefix, Tenant Tenant)[] _prefixes;

    public PeerIdentityResolver(MtlsConfig config, FrozenDictionary<string, Tenant> tenants)
    {
        _source = config.Source;
        Required = config.Required;
        var exact = new Dictionary<string, Tenant>(StringComparer.Ordinal);
        var subjects = new Dictionary<string, Tenant>(StringComparer.Ordinal);
        var prefixes = new List<(string, Tenant)>();
        foreach (var peer in config.Peers)
        {
            var tenant = tenants[peer.Tenant];
            switch (peer.Kind)
            {
                case PeerMatchKind.SpiffeId:
                    exact[peer.Value] = tenant;
                    break;
                case PeerMatchKind.Subject:
                    subjects[peer.Value] = tenant;
                    break;
                default:
                    prefixes.Add((peer.Value, tenant));
                    break;
            }
        }

        // Longest prefix first: the most specific mapping wins, deterministically.
        prefixes.Sort(static (a, b) => b.Item1.Length.CompareTo(a.Item1.Length));
        _exact = exact.ToFrozenDictionary(StringComparer.Ordinal);
        _subjects = subjects.ToFrozenDictionary(StringComparer.Ordinal);
        _prefixes = [.. prefixes];
    }

    public bool Required { get; }

    public PeerResult Resolve(ProcessingContext context)
    {
        string? uri;
        string? subject;
        if (_source == PeerIdentitySource.Xfcc)
        {
            var headers = context.RequestHeaders;
            var count = headers.CountOf(XfccHeader);
            if (count == 0)
            {
                return new(PeerStatus.Absent, null, IdentityKind.None, null);
            }

            if (count > 1 || !headers.TryGetSingle(XfccHeader, out var raw) || !Xfcc.TryParse(raw.Span, out uri, out subject))
            {
                return new(PeerStatus.Invalid, null, IdentityKind.None, null);
            }
        }
        else
        {
            context.Attributes.TryGetValue(UriSanAttribute, out uri);
            context.Attributes.TryGetValue(SubjectAttribute, out subject);
        }

        if (string.IsNullOrEmpty(uri) && string.IsNullOrEmpty(subject))
        {
            return new(PeerStatus.Absent, null, IdentityKind.None, null);
        }

        if ((uri is not null && HasControl(uri)) || (subject is not null && HasControl(subject)))
        {
            return new(PeerStatus.Invalid, null, IdentityKind.None, null);
        }

        if (!string.IsNullOrEmpty(uri) && uri.StartsWith("spiffe://", StringComparison.Ordinal))
        {
            if (_exact.TryGetValue(uri, out var tenant))
            {
                return new(PeerStatus.Mapped, tenant, IdentityKind.Spiffe, uri);
            }

            foreach (var (prefix, prefixTenant) in _prefixes)
            {
                if (uri.StartsWith(prefix, StringComparison.Ordinal) && uri.Length > prefix.Length)
                {
                    return new(PeerStatus.Mapped, prefixTenant, IdentityKind.Spiffe, uri);
                }
            }
        }

        if (!string.IsNullOrEmpty(subject) && _subjects.TryGetValue(subject, out var subjectTenant))
        {
            return new(PeerStatus.Mapped, subjectTenant, IdentityKind.X509Subject, subject);
        }

        return new(PeerStatus.Unmapped, null, IdentityKind.None, uri ?? subject);
    }

    private static bool HasControl(string value)
    {
        foreach (var c in value)
        {
            if (char.IsControl(c) || c is '\u2028' or '\u2029')
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>
/// Reads Envoy's <c>x-forwarded-client-cert</c>: one element (Envoy with SANITIZE_SET writes exactly
/// one), <c>;</c>-separated <c>key=value</c> pairs, values optionally double-quoted with <c>\"</c>
/// escapes. Several elements, several distinct SPIFFE URIs or a malformed value are refused.
/// </summary>
internal static class Xfcc
{
    public static bool TryParse(ReadOnlySpan<byte> value, out string? uri, out string? subject)
    {
        uri = null;
        subject = null;
        var text = System.Text.Encoding.UTF8.GetString(value);
        var i = 0;
        var buffer = new System.Text.StringBuilder();
        while (i < text.Length)
        {
            var eq = text.IndexOf('=', i);
            if (eq < 0)
            {
                return false;
            }

            var key = text[i..eq].Trim();
            i = eq + 1;
            buffer.Clear();
            if (i < text.Length && text[i] == '"')
            {
                i++;
                var closed = false;
                while (i < text.Length)
                {
                    var c = text[i++];
                    if (c == '\\' && i < text.Length)
                    {
                        buffer.Append(text[i++]);
                    }
                    else if (c == '"')
                    {
                        closed = true;
                        break;
                    }
                    else
                    {
                        buffer.Append(c);
                    }
                }

                if (!closed)
                {
                    return false;
                }
            }
            else
            {
                while (i < text.Length && text[i] != ';' && text[i] != ',')
                {
                    buffer.Append(text[i++]);
                }
            }

            if (i < text.Length && text[i] == ',')
            {
                // A second element: a chain of proxies, not one peer.
                return false;
            }

            if (i < text.Length)
            {
                if (text[i] != ';')
                {
                    return false;
                }

                i++;
            }

            var item = buffer.ToString();
            if (string.Equals(key, "URI", StringComparison.OrdinalIgnoreCase))
            {
                if (uri is not null && !string.Equals(uri, item, StringComparison.Ordinal))
                {
                    return false;
                }

                uri = item;
            }
            else if (string.Equals(key, "Subject", StringComparison.OrdinalIgnoreCase))
            {
                if (subject is not null)
                {
                    return false;
                }

                subject = item;
            }
        }

        return true;
    }
}
