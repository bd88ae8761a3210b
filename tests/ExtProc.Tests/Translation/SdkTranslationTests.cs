using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text;
using System.Text.Json;
using Anthropic;
using Anthropic.Models.Messages;
using ExtProc.Translation;
using OpenAI;
using OpenAI.Chat;

namespace ExtProc.Tests.Translation;

/// <summary>
/// Real SDK clients through the data plane and the real ExtProc (<see cref="TranslatingHop"/>): the OpenAI .NET SDK, buffered
/// and streaming with tools and parallel tool calls, against Anthropic-, Gemini-, DeepSeek-, Mistral- and
/// Qwen-format upstreams; the Anthropic .NET SDK against an OpenAI-format upstream. Each SDK must
/// reconstruct the tool calls (names, ids, arguments JSON-equal) and text the upstream fixture carries.
/// </summary>
public sealed class SdkTranslationTests
{
    public static TheoryData<string, string> OpenAIClientCases() => new()
    {
        { "openai-to-anthropic", "parallel-tool-calls" },
        { "openai-to-anthropic", "tool-call-after-text" },
        { "openai-to-gemini", "parallel-tool-calls" },
        { "openai-to-gemini", "tool-call-after-text" },
        { "openai-to-deepseek", "parallel-tool-calls" },
        { "openai-to-mistral", "parallel-tool-calls" },
        { "openai-to-qwen", "parallel-tool-calls" },
    };

    [Theory]
    [MemberData(nameof(OpenAIClientCases))]
    public async Task OpenAISdk_Buffered_ReconstructsToolCalls(string direction, string fixture)
    {
        var expected = ExpectedBuffered(direction, fixture);
        await using var hop = await StartAsync(direction, fixture);

        ChatCompletion completion = await Client(hop).CompleteChatAsync([new UserChatMessage("Weather?")], Options());

        Assert.Equal(expected.Text, completion.Content.Count > 0 ? completion.Content[0].Text : null);
        Assert.Equal(expected.Calls.Count, completion.ToolCalls.Count);
        for (var i = 0; i < expected.Calls.Count; i++)
        {
            Assert.Equal(expected.Calls[i].Id, completion.ToolCalls[i].Id);
            Assert.Equal(expected.Calls[i].Name, completion.ToolCalls[i].FunctionName);
            AssertJsonEqual(expected.Calls[i].Arguments, completion.ToolCalls[i].FunctionArguments.ToString());
        }

        Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
    }

    [Theory]
    [MemberData(nameof(OpenAIClientCases))]
    public async Task OpenAISdk_Streaming_ReconstructsToolCalls(string direction, string fixture)
    {
        var expected = ExpectedStream(direction, fixture);
        await using var hop = await StartAsync(direction, fixture);

        var text = new StringBuilder();
        var calls = new SortedDictionary<int, (string? Id, string? Name, StringBuilder Arguments)>();
        ChatFinishReason? finish = null;
        await foreach (var update in Client(hop).CompleteChatStreamingAsync([new UserChatMessage("Weather?")], Options()))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            foreach (var call in update.ToolCallUpdates)
            {
                if (!calls.TryGetValue(call.Index, out var entry))
                {
                    entry = (call.ToolCallId, call.FunctionName, new StringBuilder());
                    calls[call.Index] = entry;
                }

                entry.Arguments.Append(call.FunctionArgumentsUpdate?.ToString());
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(expected.Text ?? string.Empty, text.ToString());
        Assert.Equal(expected.Calls.Count, calls.Count);
        var index = 0;
        foreach (var (_, call) in calls)
        {
            Assert.Equal(expected.Calls[index].Id, call.Id);
            Assert.Equal(expected.Calls[index].Name, call.Name);
            AssertJsonEqual(expected.Calls[index].Arguments, call.Arguments.ToString());
            index++;
        }

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
    }

    [Fact]
    public async Task AnthropicSdk_Buffered_ReconstructsToolUses()
    {
        await using var hop = await StartAsync("anthropic-to-openai", "parallel-tool-calls");

        var message = await Anthropic(hop).Messages.Create(Params());

        var uses = new List<ToolUseBlock>();
        foreach (var block in message.Content)
        {
            if (block.TryPickToolUse(out var use))
            {
                uses.Add(use);
            }
        }

        Assert.Equal(2, uses.Count);
        Assert.Equal("call_a", uses[0].ID);
        Assert.Equal("get_weather", uses[0].Name);
        AssertJsonEqual("""{"city":"Oslo"}""", JsonSerializer.Serialize(uses[0].Input));
        Assert.Equal("call_b", uses[1].ID);
        Assert.Equal("search_the_internal_knowledge_base_for_documents_matching_the_query_and_return_top_results", uses[1].Name); // renamed for OpenAI's 64 limit, restored
        AssertJsonEqual("""{"q":"kb"}""", JsonSerializer.Serialize(uses[1].Input));
    }

    [Fact]
    public async Task AnthropicSdk_Streaming_ReconstructsToolUses()
    {
        await using var hop = await StartAsync("anthropic-to-openai", "parallel-tool-calls");

        var blocks = new SortedDictionary<long, (string Id, string Name, StringBuilder Json)>();
        await foreach (var streamEvent in Anthropic(hop).Messages.CreateStreaming(Params()))
        {
            if (streamEvent.TryPickContentBlockStart(out var start) && start.ContentBlock.TryPickToolUse(out var use))
            {
                blocks[start.Index] = (use.ID, use.Name, new StringBuilder());
            }
            else if (streamEvent.TryPickContentBlockDelta(out var delta) && delta.Delta.TryPickInputJson(out var json))
            {
                blocks[delta.Index].Json.Append(json.PartialJson);
            }
        }

        Assert.Equal(2, blocks.Count);
        var first = blocks[0];
        var second = blocks[1];
        Assert.Equal(("call_a", "get_weather"), (first.Id, first.Name));
        AssertJsonEqual("""{"city":"Oslo"}""", first.Json.ToString());
        Assert.Equal(("call_b", "search_the_internal_knowledge_base_for_documents_matching_the_query_and_return_top_results"), (second.Id, second.Name));
        AssertJsonEqual("""{"q":"kb"}""", second.Json.ToString());
    }

    private static async Task<TranslatingHop> StartAsync(string direction, string fixture)
    {
        var folder = Path.Combine(TranslationGolden.Root, direction);
        return await TranslatingHop.StartAsync(
            direction,
            TranslationGolden.Input(direction),
            File.ReadAllBytes(Path.Combine(folder, "response", fixture + ".json")),
            File.ReadAllBytes(Path.Combine(folder, "stream", fixture + ".sse")));
    }

    private static ChatClient Client(TranslatingHop hop)
    {
        var options = new OpenAIClientOptions { Endpoint = new Uri(hop.BaseUri, "/v1"), RetryPolicy = new ClientRetryPolicy(0) };
        options.AddPolicy(new RequestIdPolicy(hop.RequestId), PipelinePosition.PerCall);
        return new("gpt-4o", new ApiKeyCredential(TranslatingHop.Key), options);
    }

    private static AnthropicClient Anthropic(TranslatingHop hop) => new() { ApiKey = TranslatingHop.Key, BaseUrl = hop.BaseUri.ToString().TrimEnd('/'), MaxRetries = 0 };

    /// <summary>Sends the golden request id, which seeds the tool-call ids a translator synthesises.</summary>
    private sealed class RequestIdPolicy(string requestId) : PipelinePolicy
    {
        public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            message.Request.Headers.Set("x-request-id", requestId);
            ProcessNext(message, pipeline, currentIndex);
        }

        public override ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            message.Request.Headers.Set("x-request-id", requestId);
            return ProcessNextAsync(message, pipeline, currentIndex);
        }
    }

    private static ChatCompletionOptions Options() => new()
    {
        Tools =
        {
            ChatTool.CreateFunctionTool("get_weather", "Current weather", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}}}""")),
            ChatTool.CreateFunctionTool("get_time", "Current time", BinaryData.FromString("""{"type":"object","properties":{"tz":{"type":"string"}}}""")),
        },
    };

    private static MessageCreateParams Params() => new()
    {
        Model = "claude-sonnet-4-5",
        MaxTokens = 256,
        Messages = [new UserMessageParam { Content = "Weather?" }],
        Tools =
        [
            new Tool { Name = "get_weather", InputSchema = new InputSchema { Properties = new Dictionary<string, JsonElement> { ["city"] = JsonSerializer.SerializeToElement(new { type = "string" }) } } },
            new Tool { Name = "search_the_internal_knowledge_base_for_documents_matching_the_query_and_return_top_results", InputSchema = new InputSchema { Properties = new Dictionary<string, JsonElement>() } },
        ],
    };

    /// <summary>The text and tool calls of a reviewed golden output (itself checked against the upstream fixture).</summary>
    private static (string? Text, List<(string Id, string Name, string Arguments)> Calls) ExpectedBuffered(string direction, string fixture)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(TranslationGolden.Root, direction, "response", fixture + ".expected.json")));
        var message = doc.RootElement.GetProperty("body").GetProperty("choices")[0].GetProperty("message");
        var calls = new List<(string, string, string)>();
        foreach (var call in message.GetProperty("tool_calls").EnumerateArray())
        {
            var function = call.GetProperty("function");
            calls.Add((call.GetProperty("id").GetString()!, function.GetProperty("name").GetString()!, function.GetProperty("arguments").GetString()!));
        }

        var content = message.GetProperty("content");
        return (content.ValueKind == JsonValueKind.String ? content.GetString() : null, calls);
    }

    private static (string? Text, List<(string Id, string Name, string Arguments)> Calls) ExpectedStream(string direction, string fixture)
    {
        var text = new StringBuilder();
        var calls = new SortedDictionary<int, (string Id, string Name, StringBuilder Arguments)>();
        foreach (var frame in File.ReadAllText(Path.Combine(TranslationGolden.Root, direction, "stream", fixture + ".expected.sse")).Split("\n\n"))
        {
            if (!frame.StartsWith("data: {", StringComparison.Ordinal))
            {
                continue;
            }

            using var doc = JsonDocument.Parse(frame[6..]);
            foreach (var choice in doc.RootElement.GetProperty("choices").EnumerateArray())
            {
                var delta = choice.GetProperty("delta");
                if (delta.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
                {
                    text.Append(content.GetString());
                }

                if (!delta.TryGetProperty("tool_calls", out var toolCalls))
                {
                    continue;
                }

                foreach (var call in toolCalls.EnumerateArray())
                {
                    var index = call.GetProperty("index").GetInt32();
                    var function = call.GetProperty("function");
                    if (!calls.TryGetValue(index, out var entry))
                    {
                        entry = (call.GetProperty("id").GetString()!, function.GetProperty("name").GetString()!, new StringBuilder());
                        calls[index] = entry;
                    }

                    if (function.TryGetProperty("arguments", out var arguments))
                    {
                        entry.Arguments.Append(arguments.GetString());
                    }
                }
            }
        }

        var list = new List<(string, string, string)>();
        foreach (var (_, call) in calls)
        {
            list.Add((call.Id, call.Name, call.Arguments.ToString()));
        }

        return (text.Length > 0 ? text.ToString() : null, list);
    }

    private static void AssertJsonEqual(string expected, string actual) =>
        Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(System.Text.Json.Nodes.JsonNode.Parse(expected), System.Text.Json.Nodes.JsonNode.Parse(actual)), $"expected {expected}, got {actual}");
}
