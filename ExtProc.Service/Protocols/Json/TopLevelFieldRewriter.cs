using System.Buffers;
using System.Text.Json;

namespace ExtProc.Protocols.Json;

/// <summary>
/// Re-serialises a JSON object with one top-level string field set to a new value, through
/// <see cref="Utf8JsonWriter"/>: the object envelope and every key are written anew, each other value is
/// copied byte for byte. The input must already have passed the strict reader (one object, no duplicates).
/// </summary>
internal static class TopLevelFieldRewriter
{
    private static readonly JsonWriterOptions WriterOptions = new() { SkipValidation = true, Indented = false };

    /// <summary>Writes <paramref name="body"/> with <paramref name="field"/> set to <paramref name="value"/> (added if absent).</summary>
    public static void SetString(ReadOnlySpan<byte> body, ReadOnlySpan<byte> field, ReadOnlySpan<byte> value, IBufferWriter<byte> output)
    {
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 1024 });
        using var writer = new Utf8JsonWriter(output, WriterOptions);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new InvalidOperationException("The body is not a JSON object.");
        }

        writer.WriteStartObject();
        var written = false;
        Span<byte> nameBuffer = stackalloc byte[256];
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            // Keys are compared and re-written unescaped: the writer escapes what must be escaped.
            scoped ReadOnlySpan<byte> name = reader.ValueSpan;
            if (reader.ValueIsEscaped)
            {
                // Escaped forms are never shorter than their text; a rare long key gets its own array.
                var target = name.Length <= nameBuffer.Length ? nameBuffer : new byte[name.Length];
                name = target[..reader.CopyString(target)];
            }

            writer.WritePropertyName(name);
            reader.Read();
            if (name.SequenceEqual(field))
            {
                writer.WriteStringValue(value);
                written = true;
                reader.Skip();
                continue;
            }

            var start = (int)reader.TokenStartIndex;
            reader.Skip();
            var end = (int)reader.BytesConsumed;
            writer.WriteRawValue(body[start..end], skipInputValidation: true);
        }

        if (!written)
        {
            writer.WriteString(field, value);
        }

        writer.WriteEndObject();
    }
}
