using System.Text.Json;
using ExtProc.Pipeline;
using ExtProc.Protocols;
using ExtProc.Tenancy.Keys;
using static ExtProc.Tests.Engine.EngineTestKit;

namespace ExtProc.Tests.Stages.Mcp;

/// <summary>One tool allowlist for LLM and MCP: declared tools refused or stripped, model tool calls flagged or blocked.</summary>
public sealed class LlmToolPolicyStageTests
{
    private static readonly string RefuseKey = ApiKeyFormat.NewKey("refuse-main");
    private static readonly string StripKey = ApiKeyFormat.NewKey("strip-main");

    private static string Yaml => $$"""
        version: 1
        tenants:
          refuse:
            policy:
              mcp:
                tools: ["echo", "get-*"]
            keys:
              - id: refuse-main
                hash: "{{ApiKeyFormat.HashText(RefuseKey)}}"
          strip:
            policy:
              mcp:
                tools: ["echo"]
                llmTools: strip
                llmToolCalls: block
            keys:
              - id: strip-main
                hash: "{{ApiKeyFormat.HashText(StripKey)}}"
        """;

    private static string Chat(params string[] tools) =>
        "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":["
        + string.Join(",", tools.Select(t => "{\"type\":\"function\",\"function\":{\"name\":\"" + t + "\",\"parameters\":{\"type\":\"object\"}}}"))
        + "]}";

    private readonly PipelineSnapshot _snapshot = Tenancy.TestTenancy.BuildPipeline(Yaml);

    private async Task<(Envoy.StreamProcessor Processor, Engine.RecordingWriter Writer)> SendAsync(string key, string body, string path = "/v1/chat/completions")
    {
        var (processor, writer) = Processor(_snapshot);
        await processor.HandleAsync(RequestHeaders(path, extra: [("authorization", "Bearer " + key)]));
        await processor.HandleAsync(RequestBody(Utf8(body), endOfStream: true));
        return (processor, writer);
    }

    [Theory]
    [InlineData("echo", "wipe-db")]
    [InlineData("Echo")]
    public async Task Request_DeclaresAToolOutsideTheList_RefusedInOpenAiDialect(params string[] tools)
    {
        var (processor, writer) = await SendAsync(RefuseKey, Chat(tools));

        var immediate = writer.Responses[^1].ImmediateResponse;
        Assert.True(processor.Completed);
        Assert.Equal(403, (int)immediate.Status.Code);
        using var json = JsonDocument.Parse(immediate.Body.Memory);
        Assert.Equal("tool_not_allowed", json.RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Request_ToolChoiceForcesARefusedTool_Refused()
    {
        var body = Chat("echo").Replace("]}", "],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"wipe-db\"}}}", StringComparison.Ordinal);

        var (processor, _) = await SendAsync(RefuseKey, body);

        Assert.True(processor.Completed);
    }

    [Fact]
    public async Task Request_AllowedTools_Continue()
    {
        var (processor, _) = await SendAsync(RefuseKey, Chat("echo", "get-sum"));

        Assert.False(processor.Completed);
    }

    [Fact]
    public async Task Request_StripConfigured_RefusedToolsRemoved_RestIntact()
    {
        var (processor, writer) = await SendAsync(StripKey, Chat("wipe-db", "echo", "get-env"));

        Assert.False(processor.Completed);
        var reply = writer.Responses[^1].RequestBody.Response;
        using var json = JsonDocument.Parse(reply.BodyMutation.Body.Memory);
        var names = json.RootElement.GetProperty("tools").EnumerateArray().Select(t => t.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal(["echo"], names);
        Assert.Equal("hi", json.RootElement.GetProperty("messages")[0].GetProperty("content").GetString());
        Assert.Equal(reply.BodyMutation.Body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), Header(reply.HeaderMutation, "content-length"));
    }

    [Fact]
    public async Task Request_StripWouldLeaveNoTool_Refused()
    {
        var (processor, _) = await SendAsync(StripKey, Chat("wipe-db"));

        Assert.True(processor.Completed);
    }

    private const string ToolCallAnswer = """{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"wipe-db","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}""";

    [Fact]
    public async Task Response_ModelCallsARefusedTool_BlockConfigured_Withheld()
    {
        var (processor, writer) = await SendAsync(StripKey, Chat("echo"));
        await processor.HandleAsync(ResponseHeaders(200, "application/json"));
        await processor.HandleAsync(ResponseBody(Utf8(ToolCallAnswer), endOfStream: true));

        var immediate = writer.Responses[^1].ImmediateResponse;
        Assert.Equal(502, (int)immediate.Status.Code);
        Assert.Contains("tool_call_not_allowed", immediate.Body.ToStringUtf8(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Response_ModelCallsARefusedTool_Default_FlaggedAndPassed()
    {
        var (processor, writer) = await SendAsync(RefuseKey, Chat("echo"));
        await processor.HandleAsync(ResponseHeaders(200, "application/json"));
        await processor.HandleAsync(ResponseBody(Utf8(ToolCallAnswer), endOfStream: true));

        var reply = writer.Responses[^1].ResponseBody.Response;
        Assert.Equal("true", Header(reply.HeaderMutation, "x-extproc-tool-violation"));
        Assert.Null(reply.BodyMutation);
    }

    [Theory]
    [InlineData((int)ProtocolKind.OpenAiChat, ToolCallAnswer, "wipe-db")]
    [InlineData((int)ProtocolKind.OpenAiChat, """{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"a"}},{"index":1,"function":{"arguments":"{}"}}]}}]}""", "a")]
    [InlineData((int)ProtocolKind.AnthropicMessages, """{"content":[{"type":"text","text":"x"},{"name":"b","type":"tool_use","input":{"name":"not-me"}}]}""", "b")]
    [InlineData((int)ProtocolKind.AnthropicMessages, """{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"c","input":{}}}""", "c")]
    [InlineData((int)ProtocolKind.Gemini, """{"candidates":[{"content":{"parts":[{"functionCall":{"name":"d","args":{"name":"x"}}}]}}]}""", "d")]
    [InlineData((int)ProtocolKind.OpenAiChat, """{"choices":[{"message":{"content":"no tools, just a {\"name\":\"x\"}"}}]}""", "")]
    public void ToolCallReader_FindsExactlyTheCalledNames(int protocol, string json, string expected)
    {
        var names = new List<string>();

        Assert.True(ToolCallReader.TryRead(Utf8(json), (ProtocolKind)protocol, names));

        Assert.Equal(expected, string.Join(",", names));
    }
}
