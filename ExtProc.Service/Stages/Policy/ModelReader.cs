using System.Text.Json;

namespace ExtProc.Stages.Policy;

internal enum ModelReadStatus
{
    Found,
    Missing,
    NotAString,
    InvalidJson,
    Duplicate,
    FoldVariant,
}

/// <summary>
/// Reads the top-level <c>model</c> of an OpenAI or Anthropic request body with one forward pass of
/// <see cref="Utf8JsonReader"/>: names compared unescaped (<c>mod\u0065l</c> is <c>model</c>), a second
/// <c>model</c> is refused (every mainstream parser would read the last one), and so is any case
/// variant such as <c>MODEL</c> that a case-insensitive upstream would read (faults.md §3.3).
/// The full request parser belongs to the LLM stage; this is the minimum policy needs.
/// </summary>
internal static class ModelReader
{
    public static ModelReadStatus Read(ReadOnlySpan<byte> body, bool complete, out string? model)
    {
        model = null;
        try
        {
            var reader = new Utf8JsonReader(body, isFinalBlock: complete, state: default);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return ModelReadStatus.InvalidJson;
            }

            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.EndObject)
                {
                    // Nothing may follow the value (the reader rejects trailing data on the final block).
                    while (reader.Read())
                    {
                    }

                    return model is null ? ModelReadStatus.Missing : ModelReadStatus.Found;
                }

                if (reader.ValueTextEquals("model"u8))
                {
                    if (model is not null)
                    {
                        return ModelReadStatus.Duplicate;
                    }

                    if (!reader.Read())
                    {
                        break;
                    }

                    if (reader.TokenType != JsonTokenType.String)
                    {
                        return ModelReadStatus.NotAString;
                    }

                    model = reader.GetString();
                    continue;
                }

                if (IsFoldVariant(ref reader))
                {
                    return ModelReadStatus.FoldVariant;
                }

                if (!reader.Read() || !reader.TrySkip())
                {
                    break;
                }
            }

            // Ran out of bytes: a partial body whose model we could not reach.
            return model is null ? ModelReadStatus.Missing : ModelReadStatus.Found;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or ArgumentException or FormatException)
        {
            return ModelReadStatus.InvalidJson;
        }
    }

    private static bool IsFoldVariant(ref Utf8JsonReader reader)
    {
        var length = reader.HasValueSequence ? reader.ValueSequence.Length : reader.ValueSpan.Length;
        if (length > 64)
        {
            return false;
        }

        Span<char> name = stackalloc char[64];
        var written = reader.CopyString(name);
        return written == 5 && name[..5].Equals("model", StringComparison.OrdinalIgnoreCase);
    }
}
