using System.Text.Json;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToGemini;

/// <summary>The top level of a GenerateContentResponse (a whole response or one stream event).</summary>
internal struct GeminiResponse
{
    public JsonSlice Candidates;
    public JsonSlice UsageMetadata;
    public JsonSlice ModelVersion;
    public JsonSlice ResponseId;
    public JsonSlice BlockReason;
    public JsonSlice Error;

    /// <summary>Reads the top level; the candidates and their parts go into <paramref name="candidates"/>.</summary>
    public static GeminiResponse Read(ReadOnlySpan<byte> document, ref GeminiCandidates candidates)
    {
        var result = default(GeminiResponse);
        var reader = new Utf8JsonReader(document, JsonRead.Options);
        if (!System.Text.Unicode.Utf8.IsValid(document) || !JsonRead.EnterObject(ref reader))
        {
            throw new JsonException("A Gemini response must be an object.");
        }

        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("candidates"u8))
            {
                result.Candidates = candidates.Read(ref reader);
            }
            else if (reader.ValueTextEquals("usageMetadata"u8))
            {
                result.UsageMetadata = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("modelVersion"u8))
            {
                result.ModelVersion = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("responseId"u8))
            {
                result.ResponseId = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                result.Error = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("promptFeedback"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (JsonRead.NextProperty(ref reader))
                {
                    if (reader.ValueTextEquals("blockReason"u8))
                    {
                        result.BlockReason = JsonRead.PropertyValue(ref reader, 0);
                    }
                    else
                    {
                        JsonRead.SkipPropertyValue(ref reader);
                    }
                }
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        if (reader.Read())
        {
            throw new JsonException("Trailing data after the response.");
        }

        return result;
    }
}

/// <summary>One candidate: its index, parts array and finish reason.</summary>
internal struct GeminiCandidate
{
    public int Index;
    public JsonSlice Parts;
    public JsonSlice FinishReason;

    /// <summary>Where this candidate's parts are in the list they were read into.</summary>
    public int FirstPart;
    public int PartCount;

    /// <summary>Reads a candidate and its parts (into <paramref name="parts"/>); throws when either is malformed.</summary>
    public static GeminiCandidate Read(ref Utf8JsonReader reader, int origin, int position, ref PooledList<GeminiPart> parts)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("A candidate must be an object.");
        }

        var result = new GeminiCandidate { Index = position };
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("index"u8))
            {
                reader.Read();
                result.Index = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var index) && index is >= 0 and < 128 ? index : position;
            }
            else if (reader.ValueTextEquals("finishReason"u8))
            {
                result.FinishReason = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("content"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (JsonRead.NextProperty(ref reader))
                {
                    if (reader.ValueTextEquals("parts"u8))
                    {
                        result.Parts = ReadParts(ref reader, origin, ref parts, out result.FirstPart, out result.PartCount);
                    }
                    else
                    {
                        JsonRead.SkipPropertyValue(ref reader);
                    }
                }
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        return result;
    }

    private static JsonSlice ReadParts(ref Utf8JsonReader reader, int origin, ref PooledList<GeminiPart> parts, out int first, out int count)
    {
        reader.Read();
        var start = (int)reader.TokenStartIndex;
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new JsonException("parts must be an array.");
        }

        first = parts.Count;
        count = 0;
        while (JsonRead.NextElement(ref reader))
        {
            parts.Add(GeminiPart.Read(ref reader, origin));
            count++;
        }

        return new JsonSlice(origin + start, (int)reader.BytesConsumed - start);
    }
}

/// <summary>One part: text (a thought summary when <c>thought</c> is true) or a whole functionCall.</summary>
internal struct GeminiPart
{
    public JsonSlice Text;
    public bool Thought;
    public bool IsFunctionCall;
    public JsonSlice CallId;
    public JsonSlice CallName;
    public JsonSlice CallArgs;
    public JsonSlice ThoughtSignature;

    public static GeminiPart Read(ref Utf8JsonReader reader, int origin)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("A part must be an object.");
        }

        var part = default(GeminiPart);
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("text"u8))
            {
                part.Text = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("thought"u8))
            {
                reader.Read();
                part.Thought = reader.TokenType == JsonTokenType.True;
            }
            else if (reader.ValueTextEquals("thoughtSignature"u8))
            {
                part.ThoughtSignature = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("functionCall"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    throw new JsonException("functionCall must be an object.");
                }

                part.IsFunctionCall = true;
                while (JsonRead.NextProperty(ref reader))
                {
                    if (reader.ValueTextEquals("id"u8))
                    {
                        part.CallId = JsonRead.PropertyValue(ref reader, origin);
                    }
                    else if (reader.ValueTextEquals("name"u8))
                    {
                        part.CallName = JsonRead.PropertyValue(ref reader, origin);
                    }
                    else if (reader.ValueTextEquals("args"u8))
                    {
                        part.CallArgs = JsonRead.PropertyValue(ref reader, origin);
                    }
                    else
                    {
                        JsonRead.SkipPropertyValue(ref reader);
                    }
                }
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        return part;
    }
}
