using System.Buffers;
using System.Text.Json;
using ExtProc.Protocols.Sse;

namespace ExtProc.Stages.Limits;

/// <summary>
/// OpenAI-format streams carry usage only when the request asks (<c>stream_options.include_usage</c>). When
/// settlement needs it and the client did not ask, the request is rewritten to ask, and the extra chunk
/// (<c>"choices":[]</c> with usage) is taken out of the stream again so the client sees what it asked for.
/// The body was already read strictly (no duplicate or case-variant keys), so the rewrite works on its bytes.
/// </summary>
internal static class StreamUsageOption
{
    private static readonly byte[] Inserted = """
        "stream_options":{"include_usage":true}
        """u8.ToArray();

    /// <summary>The body with include_usage forced, or null when the client already asked for usage.</summary>
    public static byte[]? ForceIncludeUsage(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 256 });
        var rootStart = -1;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.StartObject && reader.CurrentDepth == 0)
            {
                rootStart = (int)reader.TokenStartIndex;
                continue;
            }

            if (reader.TokenType != JsonTokenType.PropertyName || reader.CurrentDepth != 1)
            {
                continue;
            }

            if (!reader.ValueTextEquals("stream_options"u8))
            {
                reader.Read();
                reader.Skip();
                continue;
            }

            reader.Read();
            var start = (int)reader.TokenStartIndex;
            var others = new List<(int Start, int End)>();
            if (reader.TokenType == JsonTokenType.StartObject)
            {
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var propertyStart = (int)reader.TokenStartIndex;
                    var isIncludeUsage = reader.ValueTextEquals("include_usage"u8);
                    reader.Read();
                    if (isIncludeUsage && reader.TokenType == JsonTokenType.True)
                    {
                        return null;
                    }

                    reader.Skip();
                    if (!isIncludeUsage)
                    {
                        others.Add((propertyStart, (int)reader.BytesConsumed));
                    }
                }
            }
            else
            {
                reader.Skip();
            }

            var end = (int)reader.BytesConsumed;
            var output = new ArrayBufferWriter<byte>(body.Length + 32);
            output.Write(body[..start]);
            output.Write("""{"include_usage":true"""u8);
            foreach (var (from, to) in others)
            {
                output.Write(","u8);
                output.Write(body[from..to]);
            }

            output.Write("}"u8);
            output.Write(body[end..]);
            return output.WrittenSpan.ToArray();
        }

        if (rootStart < 0)
        {
            return null;
        }

        var result = new byte[body.Length + Inserted.Length + 1];
        body[..(rootStart + 1)].CopyTo(result);
        Inserted.CopyTo(result.AsSpan(rootStart + 1));
        result[rootStart + 1 + Inserted.Length] = (byte)',';
        body[(rootStart + 1)..].CopyTo(result.AsSpan(rootStart + 2 + Inserted.Length));
        return result;
    }

    /// <summary>True for OpenAI's usage-only chunk: <c>"choices":[]</c> at the top level.</summary>
    public static bool IsUsageOnlyChunk(ReadOnlySpan<byte> data)
    {
        var reader = new Utf8JsonReader(data, new JsonReaderOptions { MaxDepth = 256 });
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1 && reader.ValueTextEquals("choices"u8))
                {
                    return reader.Read() && reader.TokenType == JsonTokenType.StartArray && reader.Read() && reader.TokenType == JsonTokenType.EndArray;
                }
            }
        }
        catch (JsonException)
        {
            return false;
        }

        return false;
    }

    /// <summary>Writes one event back as SSE (OpenAI streams use data lines only).</summary>
    public static void WriteEvent(ArrayBufferWriter<byte> output, in SseEvent sseEvent)
    {
        var data = sseEvent.Data;
        while (true)
        {
            var newline = data.IndexOf((byte)'\n');
            output.Write("data: "u8);
            output.Write(newline < 0 ? data : data[..newline]);
            output.Write("\n"u8);
            if (newline < 0)
            {
                break;
            }

            data = data[(newline + 1)..];
        }

        output.Write("\n"u8);
    }
}
