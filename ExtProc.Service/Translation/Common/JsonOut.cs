using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using ExtProc.Buffers;

namespace ExtProc.Translation.Common;

/// <summary>Writing helpers: one reusable <see cref="Utf8JsonWriter"/> per thread, raw copies of validated values.</summary>
internal static class JsonOut
{
    // Relaxed escaping keeps non-ASCII text as UTF-8 (the bodies are JSON, never HTML).
    public static readonly JsonWriterOptions Options = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        SkipValidation = false,
    };

    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    /// <summary>The thread's writer, reset onto <paramref name="output"/>. Flush it when done; do not nest.</summary>
    public static Utf8JsonWriter Writer(IBufferWriter<byte> output)
    {
        var writer = t_writer ??= new Utf8JsonWriter(Stream.Null, Options);
        writer.Reset(output);
        return writer;
    }

    /// <summary>Writes a value exactly as the input had it (it was read by Utf8JsonReader, so it is valid JSON).</summary>
    public static void Raw(Utf8JsonWriter writer, ReadOnlySpan<byte> name, ReadOnlySpan<byte> document, JsonSlice value)
    {
        writer.WritePropertyName(name);
        writer.WriteRawValue(value.In(document), skipInputValidation: true);
    }

    /// <summary>Writes a value exactly as the input had it, under a pre-encoded name.</summary>
    public static void Raw(Utf8JsonWriter writer, JsonEncodedText name, ReadOnlySpan<byte> document, JsonSlice value)
    {
        writer.WritePropertyName(name);
        writer.WriteRawValue(value.In(document), skipInputValidation: true);
    }

    /// <summary>Copies a property whose name was read raw (<paramref name="escapedName"/> is its unescaped form when it had escapes).</summary>
    public static void Raw(Utf8JsonWriter writer, ReadOnlySpan<byte> rawName, string? escapedName, ReadOnlySpan<byte> document, JsonSlice value)
    {
        if (escapedName is null)
        {
            writer.WritePropertyName(rawName);
        }
        else
        {
            writer.WritePropertyName(escapedName);
        }

        writer.WriteRawValue(value.In(document), skipInputValidation: true);
    }

    /// <summary>
    /// Writes an OpenAI arguments string as the object it encodes; empty or unparsable arguments become
    /// <c>{}</c> (rule 1 of providers.md: Anthropic streams "" for tools without arguments).
    /// </summary>
    public static void ArgumentsAsObject(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice arguments)
    {
        if (arguments.Kind(document) == JsonTokenType.StartObject)
        {
            writer.WriteRawValue(arguments.In(document), skipInputValidation: true);
            return;
        }

        if (arguments.Kind(document) == JsonTokenType.String)
        {
            using var text = new ScratchString(document, arguments, stackalloc byte[ScratchString.StackSize]);
            if (JsonRead.IsSingleObject(text.Span))
            {
                writer.WriteRawValue(text.Span, skipInputValidation: true);
                return;
            }
        }

        writer.WriteStartObject();
        writer.WriteEndObject();
    }

    /// <summary>Writes a JSON value (an object in raw bytes) as an OpenAI arguments string.</summary>
    public static void ObjectAsArguments(Utf8JsonWriter writer, ReadOnlySpan<byte> rawObject)
    {
        if (rawObject.IsEmpty)
        {
            writer.WriteStringValue("{}"u8);
            return;
        }

        writer.WriteStringValue(rawObject);
    }

    /// <summary>Writes <c>"arguments": "&lt;object as a string&gt;"</c> from an object value (<c>{}</c> when absent).</summary>
    public static void ObjectAsArgumentsProperty(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice value)
    {
        writer.WritePropertyName(JsonNames.Arguments);
        ObjectAsArguments(writer, value.Kind(document) == JsonTokenType.StartObject ? value.In(document) : default);
    }

    public static void Frame(IBufferWriter<byte> output, ReadOnlySpan<byte> bytes) => output.Write(bytes);
}

/// <summary>A pooled scratch buffer for unescaped text (concatenated text blocks, decoded strings); cleared on return.</summary>
internal struct TextBuffer : IDisposable
{
    private byte[]? _buffer;
    private int _length;

    public readonly ReadOnlySpan<byte> Span => _buffer.AsSpan(0, _length);

    public readonly int Length => _length;

    /// <summary>Appends the unescaped value of the string token the reader is on.</summary>
    public void Append(ref Utf8JsonReader reader)
    {
        var max = reader.HasValueSequence ? checked((int)reader.ValueSequence.Length) : reader.ValueSpan.Length;
        PooledBytes.EnsureCapacity(ref _buffer, _length, _length + max, minimum: 256);
        _length += reader.CopyString(_buffer.AsSpan(_length));
    }

    public void Append(ReadOnlySpan<byte> bytes)
    {
        PooledBytes.EnsureCapacity(ref _buffer, _length, _length + bytes.Length, minimum: 256);
        bytes.CopyTo(_buffer.AsSpan(_length));
        _length += bytes.Length;
    }

    public void Clear()
    {
        _buffer.AsSpan(0, _length).Clear();
        _length = 0;
    }

    public void Dispose()
    {
        if (_buffer is not null)
        {
            PooledBytes.Return(_buffer, _length);
            _buffer = null;
            _length = 0;
        }
    }
}
