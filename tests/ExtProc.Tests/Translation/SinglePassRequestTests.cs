using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using ExtProc.Translation;

namespace ExtProc.Tests.Translation;

/// <summary>
/// The single-pass request writers (messages, tool calls and content blocks read once into an index; names
/// and ids checked and written from UTF-8): escapes, rewritten ids against an independent SHA-256, the
/// per-request id memo past its window, Gemini's id → name lookup, and refusals where the writer reaches them.
/// </summary>
public sealed class SinglePassRequestTests
{
    [Fact]
    public void OpenAIToAnthropic_EscapedNameAndId_WrittenUnescaped()
    {
        var output = Translate("openai-to-anthropic", """
            {"model":"gpt-4o","messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","content":null,"tool_calls":[{"id":"call\u005f1","type":"function","function":{"name":"get\u005fweather","arguments":"{\"city\":\"Oslo\"}"}}]},
              {"role":"tool","tool_call_id":"call\u005f1","content":"12C"}]}
            """);

        Assert.Contains("\"id\":\"call_1\",\"name\":\"get_weather\",\"input\":{\"city\":\"Oslo\"}", output, StringComparison.Ordinal);
        Assert.Contains("\"tool_use_id\":\"call_1\"", output, StringComparison.Ordinal);
    }

    [Fact]
    public void OpenAIToAnthropic_IdAnthropicRefuses_RewrittenToItsSha256()
    {
        var output = Translate("openai-to-anthropic", """
            {"model":"gpt-4o","messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","tool_calls":[{"id":"call.1/ä","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"call.1/\u00e4","content":"12C"}]}
            """);

        var expected = "toolu_" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("call.1/ä")))[..24];
        Assert.Contains($"\"id\":\"{expected}\"", output, StringComparison.Ordinal);
        Assert.Contains($"\"tool_use_id\":\"{expected}\"", output, StringComparison.Ordinal);
    }

    [Fact]
    public void OpenAIToMistral_TwentyCallsThenTwentyResults_EachResultKeepsItsCallsId()
    {
        // Twenty ids: the results of the first four are further back than the memo's window, so they are hashed again.
        var calls = string.Join(",", Enumerable.Range(0, 20).Select(i => $$$"""{"id":"call_{{{i}}}","type":"function","function":{"name":"f","arguments":"{}"}}"""));
        var results = string.Join(",", Enumerable.Range(0, 20).Select(i => $$"""{"role":"tool","tool_call_id":"call_{{i}}","content":"ok"}"""));
        var messages = $"[{{\"role\":\"user\",\"content\":\"Go\"}},{{\"role\":\"assistant\",\"tool_calls\":[{calls}]}},{results}]";
        var output = Translate("openai-to-mistral", "{\"model\":\"mistral-large\",\"messages\":" + messages + "}");

        for (var i = 0; i < 20; i++)
        {
            var id = MistralId($"call_{i}");
            Assert.Contains($"\"id\":\"{id}\"", output, StringComparison.Ordinal);
            Assert.Contains($"\"tool_call_id\":\"{id}\"", output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void OpenAIToGemini_ToolResultNames_LastCallWithTheIdWinsAndUnknownIdsAreNamedSo()
    {
        var output = Translate("openai-to-gemini", """
            {"model":"gemini-2.5-pro","messages":[
              {"role":"user","content":"Go"},
              {"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"first","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"a","content":"{\"ok\":true}"},
              {"role":"tool","tool_call_id":"\u0062","content":"plain"},
              {"role":"tool","tool_call_id":"nobody","content":"x"},
              {"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"second","arguments":"{}"}},{"id":"b","type":"function","function":{"name":"third","arguments":"{}"}}]}]}
            """);

        Assert.Contains("\"functionResponse\":{\"name\":\"second\",\"response\":{\"ok\":true}}", output, StringComparison.Ordinal);
        Assert.Contains("\"functionResponse\":{\"name\":\"third\",\"response\":{\"output\":\"plain\"}}", output, StringComparison.Ordinal);
        Assert.Contains("\"functionResponse\":{\"name\":\"unknown_tool\",\"response\":{\"output\":\"x\"}}", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("openai-to-anthropic", """{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA==","format":"wav"}}]},5]}""")]
    [InlineData("openai-to-anthropic", """{"model":"m","messages":[{"role":"assistant","tool_calls":[1]}]}""")]
    [InlineData("openai-to-gemini", """{"model":"m","messages":[{"role":"user","content":"Hi"},{"role":"assistant","tool_calls":["x"]}]}""")]
    [InlineData("openai-to-mistral", """{"model":"m","messages":[{"role":"user","content":"Hi"},null]}""")]
    [InlineData("anthropic-to-openai", """{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[1]}]}""")]
    [InlineData("anthropic-to-openai", """{"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":7}]}""")]
    public void TranslateRequest_NonObjectMessagePartOrCall_InvalidBodyBeforeAnyLaterRefusal(string direction, string body)
    {
        var result = Run(direction, body, out _);

        Assert.Equal(TranslationStatus.Failed, result.Status);
        Assert.Equal(TranslationErrors.InvalidBody, result.Error!.Value.Error);
    }

    [Theory]
    [InlineData("""{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"server_tool_use"}]},5]}""", "A content block type cannot be carried to the upstream.")]
    [InlineData("""{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"Hi"},5]}""", "Each message must be an object.")]
    public void AnthropicToOpenAI_RefusalsInMessageOrder_FirstOneWins(string body, string message)
    {
        var result = Run("anthropic-to-openai", body, out _);

        Assert.Equal(TranslationErrors.Unsupported, result.Error!.Value.Error);
        Assert.Equal(message, result.Error!.Value.Message);
    }

    private static string MistralId(string id)
    {
        const string Alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(id));
        return new string(Enumerable.Range(0, 9).Select(i => Alphabet[hash[i] % Alphabet.Length]).ToArray());
    }

    private static string Translate(string direction, string body)
    {
        var result = Run(direction, body, out var output);
        Assert.NotEqual(TranslationStatus.Failed, result.Status);
        return output;
    }

    private static TranslationResult Run(string direction, string body, out string output)
    {
        var written = new ArrayBufferWriter<byte>();
        var result = TranslationGolden.Direction(direction).TranslateRequest(
            new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(body)), TranslationGolden.Input(direction), written, out _);
        output = Encoding.UTF8.GetString(written.WrittenSpan);
        return result;
    }
}
