using System.Text.Json;
using ExtProc.Protocols;

namespace ExtProc.Translation.Common;

/// <summary>
/// One element of an OpenAI request's <c>tools</c>, read in one pass: a function tool's description, parameters
/// and strict flag where they are in the body, and the name the upstream gets (a client name the upstream would
/// refuse is renamed, and the rename remembered so answers carry the client's name back).
/// </summary>
internal readonly record struct OpenAIFunctionTool(string UpstreamName, JsonSlice Description, JsonSlice Parameters, JsonSlice Strict)
{
    /// <summary>
    /// Reads the tool the reader is on (left on its end); null when it is a function tool with a name, else why
    /// it cannot be carried to <paramref name="upstream"/>.
    /// </summary>
    public static string? Read(ref Utf8JsonReader reader, ReadOnlySpan<byte> document, int origin, ProtocolKind upstream, TranslationState state, out OpenAIFunctionTool tool)
    {
        tool = default;
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            return "Each tool must be an object.";
        }

        JsonSlice type = default, name = default, description = default, parameters = default, strict = default;
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("type"u8))
            {
                type = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("function"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    return "A function tool needs a function object.";
                }

                while (JsonRead.NextProperty(ref reader))
                {
                    if (reader.ValueTextEquals("name"u8))
                    {
                        name = JsonRead.PropertyValue(ref reader, origin);
                    }
                    else if (reader.ValueTextEquals("description"u8))
                    {
                        description = JsonRead.PropertyValue(ref reader, origin);
                    }
                    else if (reader.ValueTextEquals("parameters"u8))
                    {
                        parameters = JsonRead.PropertyValue(ref reader, origin);
                    }
                    else if (reader.ValueTextEquals("strict"u8))
                    {
                        strict = JsonRead.PropertyValue(ref reader, origin);
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

        if (type.IsPresent && !JsonRead.StringEquals(document, type, "function"u8))
        {
            return upstream == ProtocolKind.Gemini ? "Only function tools can be carried to Gemini." : "Only function tools can be carried to Anthropic.";
        }

        var clientName = JsonRead.GetString(document, name);
        if (string.IsNullOrEmpty(clientName))
        {
            return "A function tool needs a name.";
        }

        var upstreamName = ToolNaming.UpstreamToolName(clientName, upstream);
        if (!string.Equals(upstreamName, clientName, StringComparison.Ordinal))
        {
            state.AddRename(upstreamName, clientName);
        }

        tool = new OpenAIFunctionTool(upstreamName, description, parameters, strict);
        return null;
    }
}
