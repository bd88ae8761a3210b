using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ExtProc.Protocols;

namespace ExtProc.Translation.Common;

/// <summary>
/// Tool names and tool-call ids that the upstream would reject are rewritten deterministically (a hash of
/// the original), so a later turn that repeats the history rewrites them the same way (providers.md §6.11).
/// Names are mapped back in responses through <see cref="TranslationState.RestoreToolName"/>.
/// </summary>
internal static class ToolNaming
{
    private static readonly SearchValues<byte> AsciiAlphanumerics = SearchValues.Create(Alphanumerics);
    private static readonly SearchValues<byte> IdChars = SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"u8);

    // One hasher per thread, reset by every use: the one-shot SHA256.HashData sets up and frees a
    // native context per call, which costs twice the hashing of a short id.
    [ThreadStatic]
    private static IncrementalHash? t_sha256;

    public static string UpstreamToolName(string name, ProtocolKind upstream)
    {
        var max = MaxNameLength(upstream);
        if (IsValidName(name, upstream, max))
        {
            return name;
        }

        var builder = new StringBuilder(max);
        foreach (var c in name)
        {
            if (builder.Length == max - 9)
            {
                break;
            }

            builder.Append(IsNameChar(c, upstream) ? c : '_');
        }

        if (upstream == ProtocolKind.Gemini && (builder.Length == 0 || !(char.IsAsciiLetter(builder[0]) || builder[0] == '_')))
        {
            builder.Insert(0, '_');
            if (builder.Length > max - 9)
            {
                builder.Length = max - 9;
            }
        }

        builder.Append('_').Append(Hex(name, 8));
        return builder.ToString();
    }

    /// <summary>
    /// Writes the upstream form of a tool name from its JSON string slice: a name that needs no rewrite (the
    /// usual case) goes out from the body's bytes with no string made.
    /// </summary>
    public static void WriteToolName(Utf8JsonWriter writer, JsonEncodedText property, ReadOnlySpan<byte> document, JsonSlice name, ProtocolKind upstream)
    {
        using var text = new ScratchString(document, name);
        if (IsValidName(text.Span, upstream, MaxNameLength(upstream)))
        {
            writer.WriteString(property, text.Span);
            return;
        }

        writer.WriteString(property, UpstreamToolName(JsonRead.GetString(document, name) ?? string.Empty, upstream));
    }

    /// <summary>Writes the upstream form of a tool-call id from its JSON string slice; true when it was rewritten.</summary>
    public static bool WriteToolCallId(Utf8JsonWriter writer, JsonEncodedText property, ReadOnlySpan<byte> document, JsonSlice id, ProtocolKind upstream, UpstreamDialect dialect) =>
        WriteToolCallId(writer, property, document, id, upstream, dialect, stackalloc byte[MaxRewrittenIdLength], out _);

    /// <summary>As above; a rewritten id is also left in <c>rewritten[..length]</c> (at least <see cref="MaxRewrittenIdLength"/> bytes).</summary>
    public static bool WriteToolCallId(
        Utf8JsonWriter writer, JsonEncodedText property, ReadOnlySpan<byte> document, JsonSlice id, ProtocolKind upstream, UpstreamDialect dialect, Span<byte> rewritten, out int length)
    {
        using var text = new ScratchString(document, id);
        if (RewriteToolCallId(text.Span, upstream, dialect, rewritten) is not { } written)
        {
            writer.WriteString(property, text.Span);
            length = 0;
            return false;
        }

        length = written;
        writer.WriteString(property, rewritten[..length]);
        return true;
    }

    /// <summary>The longest rewritten id: <c>toolu_</c> and 24 hex digits.</summary>
    public const int MaxRewrittenIdLength = 30;

    /// <summary>A tool-call id the upstream accepts, from the id's unescaped UTF-8; null when it is valid as it is.</summary>
    public static int? RewriteToolCallId(ReadOnlySpan<byte> id, ProtocolKind upstream, UpstreamDialect dialect, Span<byte> destination)
    {
        if (IsValidId(id, upstream, dialect))
        {
            return null;
        }

        Span<byte> hash = stackalloc byte[32];
        Sha256(id, hash);
        if (dialect == UpstreamDialect.Mistral)
        {
            for (var i = 0; i < 9; i++)
            {
                destination[i] = Alphanumerics[hash[i] % Alphanumerics.Length];
            }

            return 9;
        }

        var prefix = upstream == ProtocolKind.AnthropicMessages ? "toolu_"u8 : "call_"u8;
        prefix.CopyTo(destination);
        Convert.TryToHexStringLower(hash[..12], destination[prefix.Length..], out var written);
        return prefix.Length + written;
    }

    /// <summary>An id for a tool call the upstream did not name (Gemini): stable per request and position.</summary>
    public static string SynthesizedCallId(string requestId, int index) =>
        "call_" + Hex(requestId + ":" + index.ToString(System.Globalization.CultureInfo.InvariantCulture), 24);

    // Mistral's id alphabet (and the order its 9-character ids are drawn from; changing it changes every id).
    private static ReadOnlySpan<byte> Alphanumerics => "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"u8;

    private static int MaxNameLength(ProtocolKind upstream) => upstream switch
    {
        ProtocolKind.AnthropicMessages => 128,
        ProtocolKind.Gemini => 128,
        _ => 64,
    };

    // The UTF-8 checks below match the string ones: a valid name or id is ASCII, where bytes are chars.
    private static bool IsValidName(ReadOnlySpan<byte> name, ProtocolKind upstream, int max)
    {
        if (name.Length == 0 || name.Length > max)
        {
            return false;
        }

        if (upstream == ProtocolKind.Gemini && !(char.IsAsciiLetter((char)name[0]) || name[0] == '_'))
        {
            return false;
        }

        foreach (var b in name)
        {
            if (!IsNameChar((char)b, upstream))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsValidId(ReadOnlySpan<byte> id, ProtocolKind upstream, UpstreamDialect dialect)
    {
        if (dialect == UpstreamDialect.Mistral)
        {
            return id.Length == 9 && id.IndexOfAnyExcept(AsciiAlphanumerics) < 0;
        }

        return id.Length > 0 && id.IndexOfAnyExcept(IdChars) < 0 && (upstream == ProtocolKind.AnthropicMessages || id.Length <= 40);
    }

    private static bool IsValidName(string name, ProtocolKind upstream, int max)
    {
        if (name.Length == 0 || name.Length > max)
        {
            return false;
        }

        if (upstream == ProtocolKind.Gemini && !(char.IsAsciiLetter(name[0]) || name[0] == '_'))
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!IsNameChar(c, upstream))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsNameChar(char c, ProtocolKind upstream) =>
        char.IsAsciiLetterOrDigit(c) || c is '_' or '-' || (upstream == ProtocolKind.Gemini && c is '.' or ':');

    private static void Sha256(ReadOnlySpan<byte> source, Span<byte> hash)
    {
        var sha256 = t_sha256 ??= IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha256.AppendData(source);
        sha256.GetHashAndReset(hash);
    }

    private static string Hex(string source, int length)
    {
        Span<byte> hash = stackalloc byte[32];
        Sha256(Encoding.UTF8.GetBytes(source), hash);
        return Convert.ToHexStringLower(hash)[..length];
    }
}
