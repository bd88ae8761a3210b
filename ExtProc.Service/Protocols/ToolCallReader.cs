using System.Text.Json;

namespace ExtProc.Protocols;

/// <summary>
/// The names of the tools a model answer calls: OpenAI <c>tool_calls[].function.name</c> (and the legacy
/// <c>function_call.name</c>), Anthropic <c>content[]</c> blocks of type <c>tool_use</c> / <c>server_tool_use</c>,
/// Gemini <c>functionCall.name</c>. Works on a whole JSON answer and on one streamed event (OpenAI deltas carry
/// the name in the first chunk of a call, Anthropic in <c>content_block_start</c>).
/// </summary>
internal static class ToolCallReader
{
    private const int MaxDepth = 64;

    /// <summary>Adds the called tool names to <paramref name="names"/>; false when the JSON cannot be read.</summary>
    public static bool TryRead(ReadOnlySpan<byte> json, ProtocolKind protocol, List<string> names)
    {
        try
        {
            Read(json, protocol, names);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static void Read(ReadOnlySpan<byte> json, ProtocolKind protocol, List<string> names)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = MaxDepth });

        // Per depth: the property that holds the current container, and (Anthropic) the block's type and name.
        Span<byte> containers = stackalloc byte[MaxDepth + 2];
        var toolUse = new bool[MaxDepth + 2];
        var blockNames = new string?[MaxDepth + 2];
        var pending = Container.None;
        var nextIsName = false;
        var nextIsType = false;
        while (reader.Read())
        {
            var depth = reader.CurrentDepth;
            switch (reader.TokenType)
            {
                case JsonTokenType.PropertyName:
                    pending = reader.ValueTextEquals("function"u8) || reader.ValueTextEquals("function_call"u8) ? Container.Function
                        : reader.ValueTextEquals("functionCall"u8) ? Container.FunctionCall
                        : reader.ValueTextEquals("content_block"u8) ? Container.Block
                        : Container.Other;
                    nextIsName = reader.ValueTextEquals("name"u8);
                    nextIsType = reader.ValueTextEquals("type"u8);
                    continue;
                case JsonTokenType.StartObject:
                    containers[depth + 1] = (byte)pending;
                    toolUse[depth + 1] = false;
                    blockNames[depth + 1] = null;
                    break;
                case JsonTokenType.EndObject:
                    if (protocol == ProtocolKind.AnthropicMessages && toolUse[depth + 1] && blockNames[depth + 1] is { } blockName)
                    {
                        names.Add(blockName);
                    }

                    break;
                case JsonTokenType.String when nextIsName:
                    var container = (Container)containers[depth];
                    if ((protocol == ProtocolKind.OpenAiChat && container == Container.Function)
                        || (protocol == ProtocolKind.Gemini && container == Container.FunctionCall))
                    {
                        names.Add(reader.GetString()!);
                    }
                    else if (protocol == ProtocolKind.AnthropicMessages)
                    {
                        blockNames[depth] = reader.GetString();
                    }

                    break;
                case JsonTokenType.String when nextIsType && protocol == ProtocolKind.AnthropicMessages:
                    toolUse[depth] = reader.ValueTextEquals("tool_use"u8) || reader.ValueTextEquals("server_tool_use"u8);
                    break;
            }

            pending = Container.None;
            nextIsName = false;
            nextIsType = false;
        }
    }

    private enum Container : byte
    {
        None,
        Other,
        Function,
        FunctionCall,
        Block,
    }
}
