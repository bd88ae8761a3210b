using System.Text;
using System.Text.RegularExpressions;
using Envoy.Service.ExtProc.V3;

namespace ExtProc.EnvoyEmulator;

/// <summary>Local-reply details (<c>%RESPONSE_CODE_DETAILS%</c>) the emulator produces.</summary>
public static class LocalReplyDetails
{
    public const string MessageTimeout = "ext_proc_error_per-message_timeout_exceeded";
    public const string SpuriousMessage = "ext_proc_error_spurious_message";
    public const string HeaderMutationFailed = "ext_proc_error_header_mutation_failed";
    public const string ContentLengthMismatch = "mismatch_between_content_length_and_the_length_of_the_mutated_body";
    public const string RequestPayloadTooLarge = "request_payload_too_large";
    public const string ResponsePayloadTooLarge = "response_payload_too_large";
    public const string RouteNotFound = "route_not_found";
    public const string ClusterNotFound = "cluster_not_found";
    public const string UpstreamConnectFailure = "upstream_reset_before_response_started{connection_failure}";
    public const string StreamIdleTimeout = "stream_idle_timeout";
    public const string ViaUpstream = "via_upstream";

    /// <summary>Envoy's text for a failed side stream: <c>ext_proc_error_gRPC_error_&lt;code&gt;{&lt;msg&gt;}</c>.</summary>
    public static string GrpcError(Grpc.Core.StatusCode code, string message) =>
        string.IsNullOrEmpty(message)
            ? $"ext_proc_error_gRPC_error_{(int)code}"
            : $"ext_proc_error_gRPC_error_{(int)code}{{{ReplaceSpaces(message)}}}";

    /// <summary>Envoy forbids whitespace in details; it is replaced by '_'.</summary>
    public static string ReplaceSpaces(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            sb.Append(char.IsWhiteSpace(c) ? '_' : c);
        }

        return sb.ToString();
    }
}

internal enum CheckResult
{
    Ok,
    Ignore,
    Fail,
}

internal enum CheckOperation
{
    Set,
    Append,
    Remove,
}

/// <summary>The shared mutation_rules checker (spec §3.1), evaluated per header.</summary>
internal sealed class HeaderMutationChecker
{
    private readonly MutationRulesConfig _rules;
    private readonly Regex? _allow;
    private readonly Regex? _disallow;

    public HeaderMutationChecker(MutationRulesConfig rules)
    {
        _rules = rules;
        _allow = rules.AllowExpression is { } a ? new Regex($"^(?:{a})$", RegexOptions.CultureInvariant) : null;
        _disallow = rules.DisallowExpression is { } d ? new Regex($"^(?:{d})$", RegexOptions.CultureInvariant) : null;
    }

    public CheckResult Check(CheckOperation op, string name, byte[]? value)
    {
        var allowed = IsAllowedName(op, name) && (op == CheckOperation.Remove || IsValidValue(name, value!));
        if (allowed)
        {
            return CheckResult.Ok;
        }

        return _rules.DisallowIsError ? CheckResult.Fail : CheckResult.Ignore;
    }

    private bool IsAllowedName(CheckOperation op, string name)
    {
        var pseudo = name.StartsWith(':');
        if (op == CheckOperation.Remove && (pseudo || name == "host"))
        {
            return false;
        }

        if (_disallow is not null && _disallow.IsMatch(name))
        {
            return false;
        }

        if (_allow is not null && _allow.IsMatch(name))
        {
            return true;
        }

        if (_rules.DisallowAll)
        {
            return false;
        }

        if (!_rules.AllowAllRouting && name is "host" or ":authority" or ":method" or ":scheme")
        {
            return false;
        }

        if (pseudo && (op == CheckOperation.Append || _rules.DisallowSystem))
        {
            return false;
        }

        return _rules.AllowEnvoy || !name.StartsWith("x-envoy", StringComparison.Ordinal);
    }

    private static bool IsValidValue(string name, byte[] value)
    {
        var text = Encoding.UTF8.GetString(value);
        switch (name)
        {
            case "host" or ":authority":
                return text.Length > 0 && !text.Any(c => c <= ' ' || c is '/' or '?' or '#' or '@' or '\x7f');
            case ":scheme":
                return text is "http" or "https";
            case ":status":
                return int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var code)
                    && code >= 200 && code <= 999;
            default:
                return HeaderSyntax.IsValidValue(value);
        }
    }
}

internal static class HeaderSyntax
{
    /// <summary>RFC 9110 token characters (plus a leading ':' for pseudo-headers).</summary>
    public static bool IsValidKey(string key)
    {
        if (key.Length == 0)
        {
            return false;
        }

        for (var i = 0; i < key.Length; i++)
        {
            var c = key[i];
            if (i == 0 && c == ':' && key.Length > 1)
            {
                continue;
            }

            var token = char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c, StringComparison.Ordinal);
            if (!token)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Envoy's header value check: no NUL, CR or LF.</summary>
    public static bool IsValidValue(ReadOnlySpan<byte> value) => value.IndexOfAny((byte)0, (byte)'\r', (byte)'\n') < 0;
}

/// <summary>Applies a <see cref="HeaderMutation"/> the way ext_proc's mutation_utils does (spec §3.2-3.4).</summary>
internal sealed class HeaderMutationApplier(ExtProcFilterConfig config, HeaderMutationChecker checker, ExtProcStats stats)
{
    /// <summary>ext_proc honours only the deprecated <c>append</c> (default false), not append_action.</summary>
#pragma warning disable CS0612 // the deprecated field is exactly what Envoy reads
    public static bool AppendOf(Envoy.Config.Core.V3.HeaderValueOption option) => option.Append ?? false;
#pragma warning restore CS0612

    /// <summary>Returns null on success or an error text (the request then fails with status_on_error).</summary>
    public string? Apply(HeaderMutation mutation, HttpHeaderList headers, bool removeContentLength, bool replacingMessage)
    {
        if (mutation.SetHeaders.Count > config.MaxHeadersCount || mutation.RemoveHeaders.Count > config.MaxHeadersCount)
        {
            return "too many header mutations";
        }

        foreach (var raw in mutation.RemoveHeaders)
        {
            var name = raw.ToLowerInvariant();
            if (!HeaderSyntax.IsValidKey(name))
            {
                return "invalid header name in remove";
            }

            switch (checker.Check(CheckOperation.Remove, name, null))
            {
                case CheckResult.Ignore:
                    stats.Inc(ExtProcStats.RejectedHeaderMutations);
                    continue;
                case CheckResult.Fail:
                    return "disallowed header removal";
            }

            headers.Remove(name);
        }

        foreach (var option in mutation.SetHeaders)
        {
            if (option.Header is null)
            {
                continue;
            }

            if (option.Header.Value.Length > 0 && option.Header.RawValue.Length > 0)
            {
                return "both value and raw_value set";
            }

            // Envoy reads raw_value only: a value-only header becomes the empty string.
            var key = option.Header.Key.ToLowerInvariant();
            var value = option.Header.RawValue.ToByteArray();
            if (!HeaderSyntax.IsValidKey(key) || !HeaderSyntax.IsValidValue(value))
            {
                return "invalid header name or value";
            }

            if (removeContentLength && key == "content-length")
            {
                continue;
            }

            var append = AppendOf(option);
            var op = append && headers.Contains(key) ? CheckOperation.Append : CheckOperation.Set;
            var result = replacingMessage && key == ":method" ? CheckResult.Ok : checker.Check(op, key, value);
            if (result == CheckResult.Ignore)
            {
                stats.Inc(ExtProcStats.RejectedHeaderMutations);
                continue;
            }

            if (result == CheckResult.Fail)
            {
                return "disallowed header mutation";
            }

            if (op == CheckOperation.Append)
            {
                headers.Add(key, value);
            }
            else
            {
                headers.Set(key, value);
            }
        }

        if (headers.Count > config.MaxHeadersCount || headers.ByteSize > config.MaxRequestHeadersKb * 1024)
        {
            return "headers over the HCM limits after mutation";
        }

        return null;
    }
}
