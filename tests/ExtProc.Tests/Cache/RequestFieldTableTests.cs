using System.ClientModel;
using System.Text.Json;
using Anthropic;
using Anthropic.Models.Messages;
using ExtProc.EnvoyEmulator.Harness;
using ExtProc.Protocols;
using ExtProc.Stages.Cache;
using ExtProc.Tests.Translation;
using OpenAI;
using OpenAI.Chat;
using Xunit.Abstractions;

namespace ExtProc.Tests.Cache;

/// <summary>
/// C3, the other half: every top-level field the SDKs and our golden request data send is classified "in key" or
/// "ignored" in <see cref="RequestFieldTable"/>. A new SDK field fails here until someone decides its role.
/// </summary>
public sealed class RequestFieldTableTests
{
    // providers.md §1.1 and §2.1, the request field tables.
    private static readonly string[] OpenAiSpecFields =
    [
        "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "response_format", "max_completion_tokens", "max_tokens",
        "stream", "stream_options", "stop", "temperature", "top_p", "n", "seed", "presence_penalty", "frequency_penalty", "logit_bias",
        "logprobs", "top_logprobs", "user", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning_effort",
        "metadata", "store", "service_tier", "modalities", "audio", "prediction", "verbosity", "web_search_options", "moderation",
        "functions", "function_call", "safety_identifier",
    ];

    private static readonly string[] AnthropicSpecFields =
    [
        "model", "max_tokens", "messages", "system", "stop_sequences", "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking",
        "output_config", "cache_control", "metadata", "service_tier", "stream", "container", "inference_geo",
    ];

    private readonly ITestOutputHelper _output;

    public RequestFieldTableTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void Table_EveryFieldOfTheSpecAndGoldenRequests_IsClassified()
    {
        var seen = new List<(ProtocolKind, string, string)>();
        foreach (var name in OpenAiSpecFields)
        {
            seen.Add((ProtocolKind.OpenAiChat, name, "providers.md"));
        }

        foreach (var name in AnthropicSpecFields)
        {
            seen.Add((ProtocolKind.AnthropicMessages, name, "providers.md"));
        }

        foreach (var direction in Directory.GetDirectories(TranslationGolden.Root))
        {
            var folder = Path.Combine(direction, "request");
            if (!Directory.Exists(folder))
            {
                continue;
            }

            var name = Path.GetFileName(direction);
            foreach (var file in Directory.GetFiles(folder, "*.json"))
            {
                var expected = file.EndsWith(".expected.json", StringComparison.Ordinal);
                ProtocolKind? protocol = (name, expected) switch
                {
                    ({ } n, false) when n.StartsWith("openai-", StringComparison.Ordinal) => ProtocolKind.OpenAiChat,
                    ({ } n, false) when n.StartsWith("anthropic-", StringComparison.Ordinal) => ProtocolKind.AnthropicMessages,
                    ({ } n, true) when n.StartsWith("openai-to-gemini", StringComparison.Ordinal) => ProtocolKind.Gemini,
                    _ => null,
                };
                if (protocol is { } kind)
                {
                    AddTopLevel(seen, kind, File.ReadAllBytes(file), Path.GetRelativePath(TranslationGolden.Root, file));
                }
            }
        }

        AssertClassified(seen);
    }

    [Fact]
    public async Task Table_EveryFieldTheOpenAiSdkSends_IsClassified()
    {
        var bodies = new List<byte[]>();
        await using var upstream = await LoopbackUpstream.StartAsync(request =>
        {
            bodies.Add(request.Body);
            return LoopbackResponse.Json("""{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}""");
        });
        var client = new ChatClient("gpt-4o", new ApiKeyCredential("sk-test"), new OpenAIClientOptions { Endpoint = new Uri(upstream.BaseUri, "/v1") });
#pragma warning disable OPENAI001 // evaluation-only options are still sent by the SDK: they must be classified too
        var options = new ChatCompletionOptions
        {
            Temperature = 0,
            TopP = 1,
            FrequencyPenalty = 0,
            PresencePenalty = 0,
            MaxOutputTokenCount = 20,
            Seed = 7,
            StopSequences = { "END" },
            Tools = { ChatTool.CreateFunctionTool("get_weather", "Weather", BinaryData.FromString("""{"type":"object"}""")) },
            ToolChoice = ChatToolChoice.CreateAutoChoice(),
            AllowParallelToolCalls = false,
            ResponseFormat = ChatResponseFormat.CreateJsonObjectFormat(),
            IncludeLogProbabilities = true,
            TopLogProbabilityCount = 2,
            EndUserId = "user-1",
            StoredOutputEnabled = false,
            Metadata = { ["run"] = "1" },
            LogitBiases = { [42] = 1 },
            ReasoningEffortLevel = ChatReasoningEffortLevel.Low,
        };
#pragma warning restore OPENAI001
        await client.CompleteChatAsync([new SystemChatMessage("Be brief."), new UserChatMessage("Hi")], options);
        await foreach (var _ in client.CompleteChatStreamingAsync([new UserChatMessage("Hi")], new ChatCompletionOptions { Temperature = 0 }))
        {
        }

        var seen = new List<(ProtocolKind, string, string)>();
        foreach (var body in bodies)
        {
            AddTopLevel(seen, ProtocolKind.OpenAiChat, body, "OpenAI SDK");
        }

        Assert.Contains(seen, s => s.Item2 == "seed");
        AssertClassified(seen);
    }

    [Fact]
    public async Task Table_EveryFieldTheAnthropicSdkSends_IsClassified()
    {
        var bodies = new List<byte[]>();
        await using var upstream = await LoopbackUpstream.StartAsync(request =>
        {
            bodies.Add(request.Body);
            return LoopbackResponse.Json("""{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}""");
        });
        var client = new AnthropicClient { ApiKey = "sk-ant-test", BaseUrl = upstream.BaseUri.ToString().TrimEnd('/'), MaxRetries = 0 };
        await client.Messages.Create(new MessageCreateParams
        {
            Model = "claude-sonnet-4-5",
            MaxTokens = 2048,
            Messages = [new UserMessageParam { Content = "Hi" }],
            System = "Be brief.",
            StopSequences = ["END"],
            Metadata = new Metadata { UserID = "u1" },
            Thinking = new ThinkingConfigEnabled { BudgetTokens = 1024 },
            ToolChoice = new ToolChoiceAuto(),
            Tools = [new Tool { Name = "get_weather", InputSchema = new InputSchema { Properties = new Dictionary<string, JsonElement>() } }],
        });

        var seen = new List<(ProtocolKind, string, string)>();
        foreach (var body in bodies)
        {
            AddTopLevel(seen, ProtocolKind.AnthropicMessages, body, "Anthropic SDK");
        }

        Assert.Contains(seen, s => s.Item2 == "thinking");
        AssertClassified(seen);
    }

    private void AssertClassified(List<(ProtocolKind Protocol, string Name, string Source)> seen)
    {
        var missing = seen.Where(s => RequestFieldTable.Find(s.Protocol, s.Name) is null).Select(s => $"{s.Protocol}.{s.Name} ({s.Source})").Distinct().ToList();
        _output.WriteLine($"C3: {seen.Select(s => (s.Protocol, s.Name)).Distinct().Count()} distinct top-level fields seen; unclassified: {missing.Count}");
        Assert.True(missing.Count == 0, "Classify these fields in RequestFieldTable: " + string.Join(", ", missing));
    }

    private static void AddTopLevel(List<(ProtocolKind, string, string)> seen, ProtocolKind protocol, byte[] body, string source)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
        }
        catch (JsonException)
        {
            // Fixtures of refused (malformed) requests: nothing to classify.
            return;
        }

        using var _ = document;
        if (document.RootElement.TryGetProperty("$error", out var __))
        {
            // The expected side of a refused request: an error, not a request.
            return;
        }

        foreach (var property in document.RootElement.EnumerateObject())
        {
            seen.Add((protocol, property.Name, source));
        }
    }
}
