using System.Buffers;
using System.Text.Json;
using ExtProc.Buffers;

namespace ExtProc.Translation.Common;

/// <summary>A JSON value's raw bytes inside the document being translated, as an offset and a length.</summary>
internal readonly record struct JsonSlice(int Start, int Length)
{
    public bool IsPresent => Length > 0;

    public ReadOnlySpan<byte> In(ReadOnlySpan<byte> document) => document.Slice(Start, Length);

    /// <summary>A reader over just this value (positioned before its first token).</summary>
    public Utf8JsonReader Reader(ReadOnlySpan<byte> document) => new(document.Slice(Start, Length), JsonRead.Options);

    public JsonTokenType Kind(ReadOnlySpan<byte> document) => !IsPresent ? JsonTokenType.None : document[Start] switch
    {
        (byte)'{' => JsonTokenType.StartObject,
        (byte)'[' => JsonTokenType.StartArray,
        (byte)'"' => JsonTokenType.String,
        (byte)'t' => JsonTokenType.True,
        (byte)'f' => JsonTokenType.False,
        (byte)'n' => JsonTokenType.Null,
        _ => JsonTokenType.Number,
    };
}

/// <summary>An object property as read: its name as a JSON string slice (quotes included, escapes as sent) and its value.</summary>
internal readonly record struct JsonField(JsonSlice Name, bool NameIsEscaped, JsonSlice Value)
{
    /// <summary>The name equals the given text (after unescaping).</summary>
    public bool NameEquals(ReadOnlySpan<byte> document, ReadOnlySpan<byte> text) =>
        NameIsEscaped ? JsonRead.StringEquals(document, Name, text) : Name.In(document)[1..^1].SequenceEqual(text);

    /// <summary>Writes the property as it came (the name as written unless it had escapes, the value raw).</summary>
    public void CopyTo(Utf8JsonWriter writer, ReadOnlySpan<byte> document) =>
        JsonOut.Raw(writer, Name.In(document)[1..^1], NameIsEscaped ? JsonRead.GetString(document, Name) : null, document, Value);
}

/// <summary>Reads one object element of an array (the reader on its StartObject, left on its EndObject).</summary>
internal delegate T ObjectReader<TState, T>(ref Utf8JsonReader reader, ref TState state);

/// <summary>Reading helpers over <see cref="Utf8JsonReader"/> that record where values are instead of copying them.</summary>
internal static class JsonRead
{
    public static readonly JsonReaderOptions Options = new() { MaxDepth = 128 };

    /// <summary>The slice of the value the reader is on (skipping over containers); <paramref name="origin"/> is where the reader's span starts in the document.</summary>
    public static JsonSlice Value(ref Utf8JsonReader reader, int origin)
    {
        var start = (int)reader.TokenStartIndex;
        if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
        {
            reader.Skip();
        }

        return new JsonSlice(origin + start, (int)reader.BytesConsumed - start);
    }

    /// <summary>Reads the next property name of the current object; false at its end.</summary>
    public static bool NextProperty(ref Utf8JsonReader reader)
    {
        if (!reader.Read())
        {
            throw new JsonException("Unexpected end of JSON.");
        }

        return reader.TokenType == JsonTokenType.PropertyName;
    }

    /// <summary>Reads the next element of the current array; false at its end.</summary>
    public static bool NextElement(ref Utf8JsonReader reader)
    {
        if (!reader.Read())
        {
            throw new JsonException("Unexpected end of JSON.");
        }

        return reader.TokenType != JsonTokenType.EndArray;
    }

    /// <summary>Moves to the value of the current property and returns its slice.</summary>
    public static JsonSlice PropertyValue(ref Utf8JsonReader reader, int origin)
    {
        reader.Read();
        return Value(ref reader, origin);
    }

    /// <summary>
    /// Moves to the current property's value and, when it is an array, reads each object element into
    /// <paramref name="into"/> through <paramref name="read"/>; an element that is not an object is kept as a
    /// default entry, for the writer to refuse where it reaches it. Returns the value's slice (any kind).
    /// </summary>
    public static JsonSlice ObjectArray<TState, T>(ref Utf8JsonReader reader, ref PooledList<T> into, ref TState state, ObjectReader<TState, T> read, out int first, out int count)
        where T : unmanaged
    {
        reader.Read();
        first = into.Count;
        count = 0;
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            return Value(ref reader, 0);
        }

        var start = (int)reader.TokenStartIndex;
        while (NextElement(ref reader))
        {
            if (reader.TokenType == JsonTokenType.StartObject)
            {
                into.Add(read(ref reader, ref state));
            }
            else
            {
                into.Add(default);
                reader.Skip();
            }

            count++;
        }

        return new JsonSlice(start, (int)reader.BytesConsumed - start);
    }

    public static void SkipPropertyValue(ref Utf8JsonReader reader)
    {
        reader.Read();
        reader.Skip();
    }

    /// <summary>Starts reading an object slice; false when the slice is not an object.</summary>
    public static bool EnterObject(ref Utf8JsonReader reader) => reader.Read() && reader.TokenType == JsonTokenType.StartObject;

    public static bool EnterArray(ref Utf8JsonReader reader) => reader.Read() && reader.TokenType == JsonTokenType.StartArray;

    /// <summary>A string slice equals the given text (after unescaping).</summary>
    public static bool StringEquals(ReadOnlySpan<byte> document, JsonSlice slice, ReadOnlySpan<byte> text)
    {
        if (slice.Kind(document) != JsonTokenType.String)
        {
            return false;
        }

        var raw = slice.In(document)[1..^1];
        if (raw.IndexOf((byte)'\\') < 0)
        {
            return raw.SequenceEqual(text); // nothing to unescape: the bytes are the text
        }

        var reader = slice.Reader(document);
        reader.Read();
        return reader.ValueTextEquals(text);
    }

    public static string? GetString(ReadOnlySpan<byte> document, JsonSlice slice)
    {
        if (slice.Kind(document) != JsonTokenType.String)
        {
            return null;
        }

        var reader = slice.Reader(document);
        reader.Read();
        return reader.GetString();
    }

    public static bool TryGetLong(ReadOnlySpan<byte> document, JsonSlice slice, out long value)
    {
        value = 0;
        if (slice.Kind(document) != JsonTokenType.Number)
        {
            return false;
        }

        var reader = slice.Reader(document);
        reader.Read();
        return reader.TryGetInt64(out value);
    }

    public static bool TryGetDouble(ReadOnlySpan<byte> document, JsonSlice slice, out double value)
    {
        value = 0;
        if (slice.Kind(document) != JsonTokenType.Number)
        {
            return false;
        }

        var reader = slice.Reader(document);
        reader.Read();
        return reader.TryGetDouble(out value);
    }

    public static bool IsTrue(ReadOnlySpan<byte> document, JsonSlice slice) => slice.Kind(document) == JsonTokenType.True;

    /// <summary>True when the bytes are exactly one JSON object (used for tool arguments a model produced).</summary>
    public static bool IsSingleObject(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json, Options);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            reader.Skip();
            return !reader.Read();
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>The body as one span: the first segment itself, or a pooled copy the caller returns.</summary>
    public static ReadOnlySpan<byte> Contiguous(ReadOnlySequence<byte> body, out byte[]? rented)
    {
        rented = null;
        if (body.IsSingleSegment)
        {
            return body.FirstSpan;
        }

        var length = checked((int)body.Length);
        PooledBytes.EnsureCapacity(ref rented, 0, length, minimum: length);
        body.CopyTo(rented);
        return rented.AsSpan(0, length);
    }

    public static void Release(byte[]? rented, int length)
    {
        if (rented is not null)
        {
            PooledBytes.Return(rented, length);
        }
    }
}
