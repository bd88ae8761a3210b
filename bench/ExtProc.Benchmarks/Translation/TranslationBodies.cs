using System.Text;
using System.Text.Json.Nodes;

namespace ExtProc.Benchmarks.Translation;

/// <summary>
/// Realistic bodies for the translation benchmarks, grown to a target size: conversations with a system
/// prompt, tools, tool calls and tool results (requests), long answers with tool calls (responses), and
/// 100-event streams of text and tool-argument deltas in each upstream's own format.
/// </summary>
internal static class TranslationBodies
{
    public static byte[] OpenAIRequest(int size)
    {
        var messages = new JsonArray { new JsonObject { ["role"] = "system", ["content"] = "You are a helpful assistant." } };
        var turn = 0;
        var body = Build();
        while (body.Length < size)
        {
            messages.Add(new JsonObject { ["role"] = "user", ["content"] = Text(turn, 300) });
            messages.Add(new JsonObject
            {
                ["role"] = "assistant",
                ["content"] = "Checking.",
                ["tool_calls"] = new JsonArray { new JsonObject { ["id"] = $"call_{turn}", ["type"] = "function", ["function"] = new JsonObject { ["name"] = "get_weather", ["arguments"] = "{\"city\":\"Oslo\",\"unit\":\"C\"}" } } },
            });
            messages.Add(new JsonObject { ["role"] = "tool", ["tool_call_id"] = $"call_{turn}", ["content"] = "{\"temp\":12,\"sky\":\"cloudy\"}" });
            turn++;
            body = Build();
        }

        return body;

        byte[] Build() => Encoding.UTF8.GetBytes(new JsonObject
        {
            ["model"] = "gpt-4o",
            ["max_tokens"] = 1024,
            ["stream"] = false,
            ["messages"] = messages.DeepClone(),
            ["tools"] = new JsonArray { Tool() },
        }.ToJsonString());
    }

    public static byte[] AnthropicRequest(int size)
    {
        var messages = new JsonArray();
        var turn = 0;
        var body = Build();
        while (body.Length < size)
        {
            messages.Add(new JsonObject { ["role"] = "user", ["content"] = Text(turn, 300) });
            messages.Add(new JsonObject
            {
                ["role"] = "assistant",
                ["content"] = new JsonArray
                {
                    new JsonObject { ["type"] = "text", ["text"] = "Checking." },
                    new JsonObject { ["type"] = "tool_use", ["id"] = $"toolu_{turn}", ["name"] = "get_weather", ["input"] = new JsonObject { ["city"] = "Oslo" } },
                },
            });
            messages.Add(new JsonObject
            {
                ["role"] = "user",
                ["content"] = new JsonArray { new JsonObject { ["type"] = "tool_result", ["tool_use_id"] = $"toolu_{turn}", ["content"] = "12C" } },
            });
            turn++;
            body = Build();
        }

        return body;

        byte[] Build() => Encoding.UTF8.GetBytes(new JsonObject
        {
            ["model"] = "claude-sonnet-4-5",
            ["max_tokens"] = 1024,
            ["system"] = "You are a helpful assistant.",
            ["messages"] = messages.DeepClone(),
            ["tools"] = new JsonArray { new JsonObject { ["name"] = "get_weather", ["input_schema"] = Schema() } },
        }.ToJsonString());
    }

    public static byte[] AnthropicResponse(int size) => Encoding.UTF8.GetBytes(new JsonObject
    {
        ["id"] = "msg_01",
        ["type"] = "message",
        ["role"] = "assistant",
        ["model"] = "claude-sonnet-4-5",
        ["content"] = new JsonArray
        {
            new JsonObject { ["type"] = "text", ["text"] = Text(0, size - 400) },
            new JsonObject { ["type"] = "tool_use", ["id"] = "toolu_01", ["name"] = "get_weather", ["input"] = new JsonObject { ["city"] = "Oslo" } },
        },
        ["stop_reason"] = "tool_use",
        ["usage"] = new JsonObject { ["input_tokens"] = 20, ["output_tokens"] = 35, ["cache_read_input_tokens"] = 1800 },
    }.ToJsonString());

    public static byte[] OpenAIResponse(int size, string finish = "tool_calls") => Encoding.UTF8.GetBytes(new JsonObject
    {
        ["id"] = "chatcmpl-1",
        ["object"] = "chat.completion",
        ["created"] = 1700000000,
        ["model"] = "gpt-4o",
        ["choices"] = new JsonArray
        {
            new JsonObject
            {
                ["index"] = 0,
                ["message"] = new JsonObject
                {
                    ["role"] = "assistant",
                    ["content"] = Text(0, size - 450),
                    ["tool_calls"] = new JsonArray { new JsonObject { ["id"] = "call_a", ["type"] = "function", ["function"] = new JsonObject { ["name"] = "get_weather", ["arguments"] = "{\"city\":\"Oslo\"}" } } },
                },
                ["finish_reason"] = finish,
            },
        },
        ["usage"] = new JsonObject { ["prompt_tokens"] = 30, ["completion_tokens"] = 5, ["total_tokens"] = 35 },
    }.ToJsonString());

    public static byte[] GeminiResponse(int size) => Encoding.UTF8.GetBytes(new JsonObject
    {
        ["candidates"] = new JsonArray
        {
            new JsonObject
            {
                ["content"] = new JsonObject
                {
                    ["role"] = "model",
                    ["parts"] = new JsonArray
                    {
                        new JsonObject { ["text"] = Text(0, size - 400) },
                        new JsonObject { ["functionCall"] = new JsonObject { ["name"] = "get_weather", ["args"] = new JsonObject { ["city"] = "Oslo" } }, ["thoughtSignature"] = "c2ln" },
                    },
                },
                ["finishReason"] = "STOP",
                ["index"] = 0,
            },
        },
        ["usageMetadata"] = new JsonObject { ["promptTokenCount"] = 120, ["candidatesTokenCount"] = 20, ["totalTokenCount"] = 140 },
        ["modelVersion"] = "gemini-3-pro-preview",
    }.ToJsonString());

    /// <summary>A 100-event stream: a text answer in 80 deltas, then one tool call with 15 argument fragments.</summary>
    public static byte[] AnthropicStream()
    {
        var sb = new StringBuilder();
        Event(sb, "message_start", new JsonObject { ["type"] = "message_start", ["message"] = new JsonObject { ["id"] = "msg_01", ["type"] = "message", ["role"] = "assistant", ["model"] = "claude-sonnet-4-5", ["content"] = new JsonArray(), ["usage"] = new JsonObject { ["input_tokens"] = 20, ["output_tokens"] = 1 } } });
        Event(sb, "content_block_start", new JsonObject { ["type"] = "content_block_start", ["index"] = 0, ["content_block"] = new JsonObject { ["type"] = "text", ["text"] = "" } });
        for (var i = 0; i < 78; i++)
        {
            Event(sb, "content_block_delta", new JsonObject { ["type"] = "content_block_delta", ["index"] = 0, ["delta"] = new JsonObject { ["type"] = "text_delta", ["text"] = Text(i, 24) } });
        }

        Event(sb, "content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = 0 });
        Event(sb, "content_block_start", new JsonObject { ["type"] = "content_block_start", ["index"] = 1, ["content_block"] = new JsonObject { ["type"] = "tool_use", ["id"] = "toolu_01", ["name"] = "get_weather", ["input"] = new JsonObject() } });
        for (var i = 0; i < 14; i++)
        {
            Event(sb, "content_block_delta", new JsonObject { ["type"] = "content_block_delta", ["index"] = 1, ["delta"] = new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = i == 0 ? "{\"city\":\"" : i == 13 ? "\"}" : "Os" } });
        }

        Event(sb, "content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = 1 });
        Event(sb, "message_delta", new JsonObject { ["type"] = "message_delta", ["delta"] = new JsonObject { ["stop_reason"] = "tool_use" }, ["usage"] = new JsonObject { ["output_tokens"] = 35 } });
        Event(sb, "message_stop", new JsonObject { ["type"] = "message_stop" });
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    public static byte[] OpenAIStream()
    {
        var sb = new StringBuilder();
        Data(sb, Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null));
        for (var i = 0; i < 82; i++)
        {
            Data(sb, Chunk(new JsonObject { ["content"] = Text(i, 24) }, null));
        }

        Data(sb, Chunk(new JsonObject { ["tool_calls"] = new JsonArray { new JsonObject { ["index"] = 0, ["id"] = "call_a", ["type"] = "function", ["function"] = new JsonObject { ["name"] = "get_weather", ["arguments"] = "" } } } }, null));
        for (var i = 0; i < 14; i++)
        {
            Data(sb, Chunk(new JsonObject { ["tool_calls"] = new JsonArray { new JsonObject { ["index"] = 0, ["function"] = new JsonObject { ["arguments"] = i == 0 ? "{\"city\":\"" : i == 13 ? "\"}" : "Os" } } } }, null));
        }

        Data(sb, Chunk(new JsonObject(), "tool_calls"));
        sb.Append("data: [DONE]\n\n");
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    public static byte[] GeminiStream()
    {
        var sb = new StringBuilder();
        for (var i = 0; i < 99; i++)
        {
            Data(sb, new JsonObject { ["candidates"] = new JsonArray { new JsonObject { ["content"] = new JsonObject { ["role"] = "model", ["parts"] = new JsonArray { new JsonObject { ["text"] = Text(i, 24) } } }, ["index"] = 0 } } });
        }

        Data(sb, new JsonObject
        {
            ["candidates"] = new JsonArray { new JsonObject { ["content"] = new JsonObject { ["role"] = "model", ["parts"] = new JsonArray { new JsonObject { ["functionCall"] = new JsonObject { ["name"] = "get_weather", ["args"] = new JsonObject { ["city"] = "Oslo" } } } } }, ["finishReason"] = "STOP", ["index"] = 0 } },
            ["usageMetadata"] = new JsonObject { ["promptTokenCount"] = 120, ["candidatesTokenCount"] = 20, ["totalTokenCount"] = 140 },
        });
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    private static JsonObject Chunk(JsonObject delta, string? finish) => new()
    {
        ["id"] = "chatcmpl-1",
        ["object"] = "chat.completion.chunk",
        ["created"] = 1700000000,
        ["model"] = "gpt-4o",
        ["choices"] = new JsonArray { new JsonObject { ["index"] = 0, ["delta"] = delta, ["finish_reason"] = finish } },
    };

    private static void Event(StringBuilder sb, string name, JsonObject data) => sb.Append("event: ").Append(name).Append("\ndata: ").Append(data.ToJsonString()).Append("\n\n");

    private static void Data(StringBuilder sb, JsonObject data) => sb.Append("data: ").Append(data.ToJsonString()).Append("\n\n");

    private static JsonObject Tool() => new() { ["type"] = "function", ["function"] = new JsonObject { ["name"] = "get_weather", ["description"] = "Current weather", ["parameters"] = Schema() } };

    private static JsonObject Schema() => new() { ["type"] = "object", ["properties"] = new JsonObject { ["city"] = new JsonObject { ["type"] = "string" } }, ["required"] = new JsonArray { "city" } };

    private static string Text(int seed, int length)
    {
        var sb = new StringBuilder(length);
        while (sb.Length < length)
        {
            sb.Append("Weather in Oslo is mild, turn ").Append(seed).Append(". ");
        }

        return sb.ToString(0, Math.Max(1, length));
    }
}
