using System.Text;
using System.Text.Json;
using ExtProc.Protocols.Json;

namespace ExtProc.Protocols;

/// <summary>
/// Reads an OpenAI chat, Anthropic messages or Gemini generateContent request body in one strict pass
/// (<see cref="StrictJsonReader"/>) into a <see cref="RequestSummary"/>. Fields we act on are type-checked;
/// fold variants of them are refused; everything else is validated and skipped.
/// </summary>
internal static class LlmRequestReader
{
    public const int DefaultMaxDepth = 128;

    private enum Field
    {
        Unknown,
        Model,
        Stream,
        MaxTokens,
        MaxCompletionTokens,
        Tools,
        ToolChoice,
        Messages,
        System,
        User,
        Metadata,
        GenerationConfig,
        ToolConfig,
    }

    // Lower-case spellings of every top-level field an upstream of that protocol interprets and we read or
    // route on; a key folding onto one of them without matching exactly is refused.
    private static readonly string[] OpenAiFields =
        ["model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "tools", "tool_choice", "user", "metadata", "functions", "function_call", "n"];

    // Fields some SDKs and gateways read to pick the upstream host; only ExtProc picks it (faults.md P13).
    private static readonly string[] RoutingOverrideFields = ["api_base", "base_url", "api_url", "custom_llm_provider"];

    private static readonly string[] AnthropicFields =
        ["model", "messages", "system", "stream", "max_tokens", "tools", "tool_choice", "metadata"];

    // Google's JSON parsing accepts both lowerCamel and snake_case names, so both spellings are ours.
    private static readonly string[] GeminiFields =
        ["contents", "systeminstruction", "system_instruction", "tools", "toolconfig", "tool_config", "generationconfig", "generation_config"];

    /// <summary>Reads <paramref name="body"/>; false with <paramref name="violation"/> when it breaks the policy.</summary>
    public static bool TryRead(ReadOnlySpan<byte> body, ProtocolKind protocol, int maxDepth, RequestSummary summary, out JsonViolation violation)
    {
        var names = JsonNameTracker.Rent();
        var reader = new StrictJsonReader(body, maxDepth, names);
        try
        {
            ReadDocument(ref reader, protocol, summary);
            violation = reader.Violation;
            if (violation.IsNone && summary.Model is null && protocol != ProtocolKind.Gemini)
            {
                violation = new JsonViolation(JsonViolationKind.MissingField, "The request has no model.");
            }

            return violation.IsNone;
        }
        finally
        {
            reader.Dispose();
            JsonNameTracker.Return(names);
        }
    }

    private static void ReadDocument(ref StrictJsonReader reader, ProtocolKind protocol, RequestSummary summary)
    {
        if (!reader.Read())
        {
            reader.Fail(JsonViolationKind.InvalidJson, "The body is empty.");
            return;
        }

        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Fail(JsonViolationKind.InvalidJson, "The body must be a JSON object.");
            return;
        }

        var seen = 0u;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == 0)
            {
                reader.Finish();
                return;
            }

            var field = Classify(reader.Text, protocol);
            if (field == Field.Unknown && FieldNames.IsOrFoldsOntoAny(reader.Text, RoutingOverrideFields))
            {
                reader.Fail(JsonViolationKind.UnsupportedField, "The body names an upstream address; the gateway chooses the upstream.");
                return;
            }

            if (field == Field.Unknown && FieldNames.FoldsOntoAny(reader.Text, FieldsOf(protocol)))
            {
                reader.Fail(JsonViolationKind.AmbiguousField, "The body has a key that differs only in case or Unicode folding from a field the gateway reads.");
                return;
            }

            // Two spellings of one field (Gemini's camelCase and snake_case) are as ambiguous as a duplicate.
            var bit = 1u << (int)field;
            if (field != Field.Unknown && (seen & bit) != 0)
            {
                reader.Fail(JsonViolationKind.DuplicateKey, "The body names the same field twice.");
                return;
            }

            seen |= bit;
            if (!reader.Read() || !ReadField(ref reader, field, protocol, summary))
            {
                return;
            }
        }
    }

    private static bool ReadField(ref StrictJsonReader reader, Field field, ProtocolKind protocol, RequestSummary summary)
    {
        switch (field)
        {
            case Field.Model:
                if (reader.TokenType != JsonTokenType.String || reader.Text.IsEmpty || reader.Text.Length > 256)
                {
                    return reader.Fail(JsonViolationKind.InvalidField, "model must be a non-empty string of at most 256 bytes.");
                }

                summary.Model = Encoding.UTF8.GetString(reader.Text);
                return true;
            case Field.Stream:
                if (reader.TokenType is not (JsonTokenType.True or JsonTokenType.False))
                {
                    return reader.Fail(JsonViolationKind.InvalidField, "stream must be true or false.");
                }

                summary.Stream = reader.TokenType == JsonTokenType.True;
                return true;
            case Field.MaxTokens:
            case Field.MaxCompletionTokens:
                if (reader.TokenType == JsonTokenType.Null)
                {
                    return true;
                }

                if (!reader.TryGetInteger(out var tokens) || tokens < 0)
                {
                    return reader.Fail(JsonViolationKind.InvalidNumber, "max_tokens must be a non-negative whole number.");
                }

                if (field == Field.MaxTokens)
                {
                    summary.MaxTokens = tokens;
                }
                else
                {
                    summary.MaxCompletionTokens = tokens;
                }

                return true;
            case Field.Tools:
                return ReadTools(ref reader, protocol, summary);
            case Field.ToolChoice:
                return ReadToolChoice(ref reader, summary);
            case Field.ToolConfig:
                return ReadGeminiToolConfig(ref reader, summary);
            case Field.Messages:
            case Field.System:
                return ReadContent(ref reader, summary, countEntries: field == Field.Messages);
            case Field.User:
                if (reader.TokenType == JsonTokenType.String)
                {
                    summary.User = Encoding.UTF8.GetString(reader.Text);
                    return true;
                }

                return reader.TokenType == JsonTokenType.Null || reader.Fail(JsonViolationKind.InvalidField, "user must be a string.");
            case Field.Metadata:
                return protocol == ProtocolKind.AnthropicMessages ? ReadAnthropicMetadata(ref reader, summary) : reader.SkipValue();
            case Field.GenerationConfig:
                return ReadGenerationConfig(ref reader, summary);
            default:
                return reader.SkipValue();
        }
    }

    private static bool ReadTools(ref StrictJsonReader reader, ProtocolKind protocol, RequestSummary summary)
    {
        if (reader.TokenType == JsonTokenType.Null)
        {
            return true;
        }

        if (reader.TokenType != JsonTokenType.StartArray)
        {
            return reader.Fail(JsonViolationKind.InvalidField, "tools must be an array.");
        }

        // Depth of each tool object's StartObject, and of its name property.
        var toolDepth = protocol == ProtocolKind.Gemini ? 4 : 2;
        var nameDepth = protocol switch
        {
            ProtocolKind.OpenAiChat => 4,
            ProtocolKind.Gemini => 5,
            _ => 3,
        };
        var inTool = false;
        var inDeclarations = false;
        var underFunction = false;
        var nextIsName = false;
        string? name = null;
        var start = 0L;
        while (reader.Read())
        {
            var token = reader.TokenType;
            var depth = reader.CurrentDepth;
            if (token == JsonTokenType.EndArray && depth == 1)
            {
                return true;
            }

            if (protocol == ProtocolKind.Gemini && depth == 3)
            {
                if (token == JsonTokenType.PropertyName)
                {
                    inDeclarations = reader.Text.SequenceEqual("functionDeclarations"u8) || reader.Text.SequenceEqual("function_declarations"u8);
                }
                else if (token == JsonTokenType.EndArray)
                {
                    inDeclarations = false;
                }
            }

            if (!inTool)
            {
                if (token == JsonTokenType.StartObject && depth == toolDepth && (protocol != ProtocolKind.Gemini || inDeclarations))
                {
                    inTool = true;
                    name = null;
                    start = reader.TokenStartIndex;
                }

                continue;
            }

            if (nextIsName)
            {
                nextIsName = false;
                if (token != JsonTokenType.String)
                {
                    return reader.Fail(JsonViolationKind.InvalidField, "A tool name must be a string.");
                }

                name = Encoding.UTF8.GetString(reader.Text);
            }
            else if (token == JsonTokenType.PropertyName)
            {
                if (protocol == ProtocolKind.OpenAiChat && depth == 3)
                {
                    underFunction = reader.Text.SequenceEqual("function"u8) || reader.Text.SequenceEqual("custom"u8);
                }

                if (depth == nameDepth && (protocol != ProtocolKind.OpenAiChat || underFunction))
                {
                    if (reader.Text.SequenceEqual("name"u8))
                    {
                        nextIsName = true;
                    }
                    else if (FieldNames.FoldEquals(reader.Text, "name"))
                    {
                        return reader.Fail(JsonViolationKind.AmbiguousField, "A tool has a key that folds onto 'name'.");
                    }
                }
            }
            else if (token == JsonTokenType.EndObject && depth == toolDepth)
            {
                inTool = false;
                summary.Tools.Add(new ToolSummary(name ?? string.Empty, (int)start, (int)(reader.BytesConsumed - start)));
            }
        }

        return false;
    }

    private static bool ReadToolChoice(ref StrictJsonReader reader, RequestSummary summary)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return true;
            case JsonTokenType.String:
                summary.ToolChoice = Encoding.UTF8.GetString(reader.Text);
                return true;
            case JsonTokenType.StartObject:
                // OpenAI {type, function:{name}} / {type:"custom", custom:{name}}; Anthropic {type, name}.
                var nextIsType = false;
                var nextIsName = false;
                while (reader.Read())
                {
                    if (reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == 1)
                    {
                        return true;
                    }

                    if (reader.TokenType == JsonTokenType.PropertyName)
                    {
                        nextIsType = reader.CurrentDepth == 2 && reader.Text.SequenceEqual("type"u8);
                        nextIsName = reader.CurrentDepth is 2 or 3 && reader.Text.SequenceEqual("name"u8);
                    }
                    else if (reader.TokenType == JsonTokenType.String && (nextIsType || nextIsName))
                    {
                        if (nextIsType)
                        {
                            summary.ToolChoice = Encoding.UTF8.GetString(reader.Text);
                        }
                        else
                        {
                            summary.ToolChoiceName = Encoding.UTF8.GetString(reader.Text);
                        }

                        nextIsType = nextIsName = false;
                    }
                }

                return false;
            default:
                return reader.Fail(JsonViolationKind.InvalidField, "tool_choice must be a string or an object.");
        }
    }

    private static bool ReadGeminiToolConfig(ref StrictJsonReader reader, RequestSummary summary)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            return reader.TokenType == JsonTokenType.Null || reader.Fail(JsonViolationKind.InvalidField, "toolConfig must be an object.");
        }

        var nextIsMode = false;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == 1)
            {
                return true;
            }

            if (reader.TokenType == JsonTokenType.PropertyName)
            {
                nextIsMode = reader.CurrentDepth == 3 && reader.Text.SequenceEqual("mode"u8);
            }
            else if (nextIsMode && reader.TokenType == JsonTokenType.String)
            {
                summary.ToolChoice = Encoding.UTF8.GetString(reader.Text);
                nextIsMode = false;
            }
        }

        return false;
    }

    private static bool ReadContent(ref StrictJsonReader reader, RequestSummary summary, bool countEntries)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            summary.ContentBytes += reader.Text.Length;
            return true;
        }

        if (reader.TokenType is not (JsonTokenType.StartArray or JsonTokenType.StartObject))
        {
            return reader.TokenType == JsonTokenType.Null || reader.Fail(JsonViolationKind.InvalidField, "messages must be an array.");
        }

        if (countEntries && reader.TokenType != JsonTokenType.StartArray)
        {
            return reader.Fail(JsonViolationKind.InvalidField, "messages must be an array.");
        }

        while (reader.Read())
        {
            var depth = reader.CurrentDepth;
            switch (reader.TokenType)
            {
                case JsonTokenType.EndArray or JsonTokenType.EndObject when depth == 1:
                    return true;
                case JsonTokenType.StartObject or JsonTokenType.StartArray when depth == 2 && countEntries:
                    summary.MessageCount++;
                    break;
                case JsonTokenType.String:
                    summary.ContentBytes += reader.Text.Length;
                    break;
            }
        }

        return false;
    }

    private static bool ReadAnthropicMetadata(ref StrictJsonReader reader, RequestSummary summary)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            return reader.TokenType == JsonTokenType.Null || reader.Fail(JsonViolationKind.InvalidField, "metadata must be an object.");
        }

        var nextIsUser = false;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == 1)
            {
                return true;
            }

            if (reader.TokenType == JsonTokenType.PropertyName)
            {
                nextIsUser = reader.CurrentDepth == 2 && reader.Text.SequenceEqual("user_id"u8);
            }
            else if (nextIsUser && reader.TokenType == JsonTokenType.String)
            {
                summary.User = Encoding.UTF8.GetString(reader.Text);
                nextIsUser = false;
            }
        }

        return false;
    }

    private static bool ReadGenerationConfig(ref StrictJsonReader reader, RequestSummary summary)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            return reader.TokenType == JsonTokenType.Null || reader.Fail(JsonViolationKind.InvalidField, "generationConfig must be an object.");
        }

        var nextIsMax = false;
        var seenMax = false;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == 1)
            {
                return true;
            }

            if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 2)
            {
                nextIsMax = reader.Text.SequenceEqual("maxOutputTokens"u8) || reader.Text.SequenceEqual("max_output_tokens"u8);
                if (!nextIsMax && FieldNames.FoldEquals(reader.Text, "maxoutputtokens"))
                {
                    return reader.Fail(JsonViolationKind.AmbiguousField, "generationConfig has a key that folds onto maxOutputTokens.");
                }

                if (nextIsMax && seenMax)
                {
                    return reader.Fail(JsonViolationKind.DuplicateKey, "generationConfig names maxOutputTokens twice.");
                }

                seenMax |= nextIsMax;
            }
            else if (nextIsMax)
            {
                nextIsMax = false;
                if (!reader.TryGetInteger(out var max) || max < 0)
                {
                    return reader.Fail(JsonViolationKind.InvalidNumber, "maxOutputTokens must be a non-negative whole number.");
                }

                summary.MaxTokens = max;
            }
        }

        return false;
    }

    private static Field Classify(ReadOnlySpan<byte> name, ProtocolKind protocol) => protocol switch
    {
        ProtocolKind.Gemini => name switch
        {
            _ when name.SequenceEqual("contents"u8) => Field.Messages,
            _ when name.SequenceEqual("systemInstruction"u8) || name.SequenceEqual("system_instruction"u8) => Field.System,
            _ when name.SequenceEqual("tools"u8) => Field.Tools,
            _ when name.SequenceEqual("toolConfig"u8) || name.SequenceEqual("tool_config"u8) => Field.ToolConfig,
            _ when name.SequenceEqual("generationConfig"u8) || name.SequenceEqual("generation_config"u8) => Field.GenerationConfig,
            _ => Field.Unknown,
        },
        _ => name switch
        {
            _ when name.SequenceEqual("model"u8) => Field.Model,
            _ when name.SequenceEqual("messages"u8) => Field.Messages,
            _ when name.SequenceEqual("stream"u8) => Field.Stream,
            _ when name.SequenceEqual("max_tokens"u8) => Field.MaxTokens,
            _ when name.SequenceEqual("max_completion_tokens"u8) && protocol == ProtocolKind.OpenAiChat => Field.MaxCompletionTokens,
            _ when name.SequenceEqual("tools"u8) => Field.Tools,
            _ when name.SequenceEqual("tool_choice"u8) => Field.ToolChoice,
            _ when name.SequenceEqual("system"u8) && protocol == ProtocolKind.AnthropicMessages => Field.System,
            _ when name.SequenceEqual("user"u8) && protocol == ProtocolKind.OpenAiChat => Field.User,
            _ when name.SequenceEqual("metadata"u8) => Field.Metadata,
            _ => Field.Unknown,
        },
    };

    // OpenAI fields we guard against fold variants but do not read: their exact spelling is the field itself
    // (e.g. stream_options, which the OpenAI SDKs send on every stream), not an ambiguity.
    private static string[] FieldsOf(ProtocolKind protocol) => protocol switch
    {
        ProtocolKind.AnthropicMessages => AnthropicFields,
        ProtocolKind.Gemini => GeminiFields,
        _ => OpenAiFields,
    };
}
