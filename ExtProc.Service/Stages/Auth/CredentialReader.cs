using ExtProc.Pipeline;
using ExtProc.Tenancy.Jwt;

namespace ExtProc.Stages.Auth;

internal enum CredentialKind
{
    None,
    ApiKey,
    Jwt,

    /// <summary>Two different credentials, a repeated credential header, or an underscore look-alike (faults.md A1, A2).</summary>
    Ambiguous,

    /// <summary>An Authorization header with a scheme other than Bearer, or an empty/unprintable value.</summary>
    Unsupported,

    /// <summary>A credential in the query string (key=, api_key=, access_token=): never accepted.</summary>
    InQuery,
}

internal readonly record struct Credential(CredentialKind Kind, ReadOnlyMemory<byte> Value, string? Reason = null);

/// <summary>
/// Collects the credential a request presents. Accepted places: <c>Authorization: Bearer</c>
/// (OpenAI, MCP), <c>x-api-key</c> (Anthropic), <c>api-key</c> (Azure style) and
/// <c>x-goog-api-key</c> (Gemini). The same key in several of them is one credential; anything else
/// that could be read two ways is ambiguous and refused.
/// </summary>
internal static class CredentialReader
{
    public const string Authorization = "authorization";

    /// <summary>Every header that may carry a client credential; all are removed before the upstream.</summary>
    public static readonly string[] CredentialHeaders = [Authorization, "x-api-key", "api-key", "x-goog-api-key"];

    public static Credential Read(HttpHeaderList headers)
    {
        ReadOnlyMemory<byte> found = default;
        var haveValue = false;
        var fromAuthorization = false;
        for (var i = 0; i < headers.Count; i++)
        {
            var (name, raw) = headers[i];
            if (name.Contains('_') && IsUnderscoreVariant(name))
            {
                return new(CredentialKind.Ambiguous, default, $"header {name} is a look-alike of a credential header");
            }

            var isAuthorization = string.Equals(name, Authorization, StringComparison.Ordinal);
            if (!isAuthorization && !IsKeyHeader(name))
            {
                continue;
            }

            if (headers.CountOf(name) > 1)
            {
                return new(CredentialKind.Ambiguous, default, $"header {name} is repeated");
            }

            ReadOnlyMemory<byte> value;
            if (isAuthorization)
            {
                if (!TryBearer(raw, out value))
                {
                    return new(CredentialKind.Unsupported, default, "authorization scheme is not bearer");
                }
            }
            else
            {
                value = Trim(raw);
            }

            if (value.IsEmpty || !IsPrintable(value.Span))
            {
                return new(CredentialKind.Unsupported, default, $"header {name} is empty or not printable");
            }

            if (haveValue && !value.Span.SequenceEqual(found.Span))
            {
                return new(CredentialKind.Ambiguous, default, "different credentials in several headers");
            }

            found = value;
            haveValue = true;
            fromAuthorization |= isAuthorization;
        }

        if (!haveValue)
        {
            return new(CredentialKind.None, default);
        }

        // A JWT comes only as a bearer token; anything else is a key attempt.
        var jwt = fromAuthorization && JwtAuthenticator.LooksLikeJwt(found.Span);
        return new(jwt ? CredentialKind.Jwt : CredentialKind.ApiKey, found);
    }

    /// <summary>True when the query string carries a credential parameter.</summary>
    public static bool HasQueryCredential(ReadOnlySpan<byte> path)
    {
        var q = path.IndexOf((byte)'?');
        if (q < 0)
        {
            return false;
        }

        var query = path[(q + 1)..];
        while (!query.IsEmpty)
        {
            var amp = query.IndexOf((byte)'&');
            var pair = amp < 0 ? query : query[..amp];
            var eq = pair.IndexOf((byte)'=');
            var name = eq < 0 ? pair : pair[..eq];
            if (System.Text.Ascii.EqualsIgnoreCase(name, "key"u8) || System.Text.Ascii.EqualsIgnoreCase(name, "api_key"u8)
                || System.Text.Ascii.EqualsIgnoreCase(name, "api-key"u8) || System.Text.Ascii.EqualsIgnoreCase(name, "access_token"u8))
            {
                return true;
            }

            query = amp < 0 ? default : query[(amp + 1)..];
        }

        return false;
    }

    private static bool IsKeyHeader(string name) => name is "x-api-key" or "api-key" or "x-goog-api-key";

    private static bool IsUnderscoreVariant(string name)
    {
        Span<char> dashed = stackalloc char[Math.Min(name.Length, 64)];
        if (name.Length > dashed.Length)
        {
            return false;
        }

        name.AsSpan().Replace(dashed, '_', '-');
        return dashed is "x-api-key" or "api-key" or "x-goog-api-key";
    }

    private static bool TryBearer(ReadOnlyMemory<byte> raw, out ReadOnlyMemory<byte> token)
    {
        token = default;
        var value = Trim(raw);
        if (value.Length < 7 || !System.Text.Ascii.EqualsIgnoreCase(value.Span[..6], "bearer"u8) || value.Span[6] != (byte)' ')
        {
            return false;
        }

        token = Trim(value[7..]);
        return true;
    }

    private static ReadOnlyMemory<byte> Trim(ReadOnlyMemory<byte> value)
    {
        var span = value.Span;
        var start = 0;
        var end = span.Length;
        while (start < end && span[start] is (byte)' ' or (byte)'\t')
        {
            start++;
        }

        while (end > start && span[end - 1] is (byte)' ' or (byte)'\t')
        {
            end--;
        }

        return value[start..end];
    }

    private static bool IsPrintable(ReadOnlySpan<byte> value)
    {
        foreach (var b in value)
        {
            if (b is < 0x21 or > 0x7e)
            {
                return false;
            }
        }

        return true;
    }
}
