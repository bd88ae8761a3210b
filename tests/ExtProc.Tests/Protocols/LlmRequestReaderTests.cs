using System.Text;
using ExtProc.Protocols;
using ExtProc.Protocols.Json;

namespace ExtProc.Tests.Protocols;

public sealed class LlmRequestReaderTests
{
    private const string OpenAiBody = """
        {"model":"gpt-4o-mini","stream":true,"max_completion_tokens":512,"user":"u-1",
         "messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Weather?"}]}],
         "tools":[{"type":"function","function":{"name":"get_weather","description":"d","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},
                  {"type":"function","function":{"name":"get_time","parameters":{}}}],
         "tool_choice":{"type":"function","function":{"name":"get_weather"}},"temperature":1e400}
        """;

    private const string AnthropicBody = """
        {"model":"claude-sonnet-4-5","max_tokens":1024,"system":[{"type":"text","text":"Sys"}],
         "messages":[{"role":"user","content":"Hello"}],"metadata":{"user_id":"abc"},
         "tools":[{"name":"lookup","description":"x","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"lookup"}}
        """;

    private const string GeminiBody = """
        {"contents":[{"role":"user","parts":[{"text":"Hi"}]}],"systemInstruction":{"parts":[{"text":"Sys"}]},
         "tools":[{"functionDeclarations":[{"name":"a","parameters":{}},{"name":"b"}]},{"googleSearch":{}}],
         "toolConfig":{"functionCallingConfig":{"mode":"ANY"}},"generationConfig":{"maxOutputTokens":64,"temperature":0.2}}
        """;

    [Fact]
    public void TryRead_OpenAiChat_SummaryHasEveryFieldWeAct()
    {
        var summary = Read(OpenAiBody, ProtocolKind.OpenAiChat);

        Assert.Equal("gpt-4o-mini", summary.Model);
        Assert.True(summary.Stream);
        Assert.Equal(512, summary.MaxCompletionTokens);
        Assert.Null(summary.MaxTokens);
        Assert.Equal("u-1", summary.User);
        Assert.Equal(2, summary.MessageCount);
        Assert.Equal(["get_weather", "get_time"], summary.Tools.Select(t => t.Name));
        var body = Encoding.UTF8.GetBytes(OpenAiBody);
        Assert.NotEqual(summary.Tools[0].DefinitionHash(body), summary.Tools[1].DefinitionHash(body));
        Assert.StartsWith("{\"type\":\"function\"", Encoding.UTF8.GetString(body, summary.Tools[0].Offset, summary.Tools[0].Length));
        Assert.EndsWith("}}}", Encoding.UTF8.GetString(body, summary.Tools[0].Offset, summary.Tools[0].Length));
        Assert.Equal("function", summary.ToolChoice);
        Assert.Equal("get_weather", summary.ToolChoiceName);
        Assert.True(summary.ContentBytes >= "Be brief.Weather?".Length);
    }

    [Fact]
    public void TryRead_Anthropic_SummaryHasEveryFieldWeAct()
    {
        var summary = Read(AnthropicBody, ProtocolKind.AnthropicMessages);

        Assert.Equal("claude-sonnet-4-5", summary.Model);
        Assert.Equal(1024, summary.MaxTokens);
        Assert.Equal("abc", summary.User);
        Assert.Equal(1, summary.MessageCount);
        Assert.Equal("lookup", Assert.Single(summary.Tools).Name);
        Assert.Equal(("tool", "lookup"), (summary.ToolChoice, summary.ToolChoiceName));
    }

    [Fact]
    public void TryRead_Gemini_SummaryHasEveryFieldWeAct()
    {
        var summary = Read(GeminiBody, ProtocolKind.Gemini);

        Assert.Null(summary.Model); // Gemini names the model in the path
        Assert.Equal(64, summary.MaxTokens);
        Assert.Equal(["a", "b"], summary.Tools.Select(t => t.Name));
        Assert.Equal("ANY", summary.ToolChoice);
        Assert.Equal(1, summary.MessageCount);
    }

    [Fact]
    public void ToolHash_SameDefinitionSpelledWithEscapes_SameHash_ChangedDefinition_DifferentHash()
    {
        const string plain = """{"model":"m","tools":[{"type":"function","function":{"name":"t","description":"weather"}}]}""";
        const string escaped = """{"model":"m","tools":[ {"type" : "function","function":{"name":"t","description":"w\u0065ather"}}]}""";
        const string changed = """{"model":"m","tools":[{"type":"function","function":{"name":"t","description":"weather!"}}]}""";

        Assert.Equal(Hash(plain), Hash(escaped));
        Assert.NotEqual(Hash(plain), Hash(changed));

        static UInt128 Hash(string body) => Read(body, ProtocolKind.OpenAiChat).Tools[0].DefinitionHash(Encoding.UTF8.GetBytes(body));
    }

    [Theory]
    [InlineData("""{"model":"a","stream":true,"stream_options":{"include_usage":true},"n":1,"messages":[]}""")]
    [InlineData("""{"model":"a","functions":[],"function_call":"auto","metadata":{},"messages":[]}""")]
    public void TryRead_FieldsPassedThroughSpelledExactly_Accepted(string body) =>
        Assert.Null(Violation(Encoding.UTF8.GetBytes(body), ProtocolKind.OpenAiChat));

    [Theory]
    // J1 duplicates, top level and nested
    [InlineData("""{"model":"a","model":"b"}""", "duplicate_key")]
    [InlineData("""{"model":"a","messages":[{"role":"user","role":"system"}]}""", "duplicate_key")]
    [InlineData("""{"model":"a","x":{"k":1,"k":2}}""", "duplicate_key")]
    // J2 escaped duplicates
    [InlineData("""{"model":"a","mod\u0065l":"b"}""", "duplicate_key")]
    // J3 fold variants of fields we act on
    [InlineData("""{"model":"a","MODEL":"b"}""", "ambiguous_field")]
    [InlineData("""{"Model":"a"}""", "ambiguous_field")]
    [InlineData("""{"model":"a","ſtream":true}""", "ambiguous_field")]
    [InlineData("""{"model":"a","max_to\u212Aens":5}""", "ambiguous_field")]
    [InlineData("""{"model":"a","tools":[{"type":"function","function":{"NAME":"x"}}]}""", "ambiguous_field")]
    // J4 JSON extensions
    [InlineData("""{"model":"a",}""", "invalid_json")]
    [InlineData("""{"model":"a" /* c */}""", "invalid_json")]
    [InlineData("""{'model':'a'}""", "invalid_json")]
    [InlineData("""{"model":"a","temperature":NaN}""", "invalid_json")]
    // J6 lone and reversed surrogates, in keys and values
    [InlineData("""{"model":"a","x":"\ud800"}""", "invalid_unicode")]
    [InlineData("""{"model":"a","\udc00\ud800":1}""", "invalid_unicode")]
    // J8 numbers we interpret
    [InlineData("""{"model":"a","max_tokens":1e400}""", "invalid_number")]
    [InlineData("""{"model":"a","max_tokens":1.0}""", "invalid_number")]
    [InlineData("""{"model":"a","max_tokens":-0}""", "invalid_number")]
    [InlineData("""{"model":"a","max_tokens":18446744073709551616}""", "invalid_number")]
    [InlineData("""{"model":"a","max_tokens":-5}""", "invalid_number")]
    // J9 shape
    [InlineData("", "invalid_json")]
    [InlineData("""["model"]""", "invalid_json")]
    [InlineData("42", "invalid_json")]
    [InlineData("""{"model":"a"} {}""", "invalid_json")]
    [InlineData("""{"model":"a"}x""", "invalid_json")]
    // fields we act on, wrong type or missing
    [InlineData("""{"model":7}""", "invalid_field")]
    [InlineData("""{"model":""}""", "invalid_field")]
    [InlineData("""{"model":"a","stream":"yes"}""", "invalid_field")]
    [InlineData("""{"model":"a","tools":{}}""", "invalid_field")]
    [InlineData("""{"messages":[]}""", "missing_field")]
    [InlineData("""{"model":"a","Stream_Options":{}}""", "ambiguous_field")]
    // P13: only the gateway picks the upstream
    [InlineData("""{"model":"a","api_base":"http://x"}""", "unsupported_field")]
    [InlineData("""{"model":"a","BASE_URL":"http://x"}""", "unsupported_field")]
    public void TryRead_OpenAiPolicyViolation_RefusedWithItsCode(string body, string code) =>
        Assert.Equal(code, Violation(Encoding.UTF8.GetBytes(body), ProtocolKind.OpenAiChat));

    [Theory]
    [InlineData("""{"contents":[],"generationConfig":{},"generation_config":{}}""", "duplicate_key")]
    [InlineData("""{"contents":[],"GenerationConfig":{}}""", "ambiguous_field")]
    [InlineData("""{"contents":[],"generationConfig":{"maxOutputTokens":1,"max_output_tokens":2}}""", "duplicate_key")]
    [InlineData("""{"contents":[],"generationConfig":{"MaxOutputTokens":1}}""", "ambiguous_field")]
    [InlineData("""{"contents":[],"tools":[{"functionDeclarations":[{"Name":"x"}]}]}""", "ambiguous_field")]
    public void TryRead_GeminiPolicyViolation_RefusedWithItsCode(string body, string code) =>
        Assert.Equal(code, Violation(Encoding.UTF8.GetBytes(body), ProtocolKind.Gemini));

    [Theory]
    [InlineData(new byte[] { 0xFF })]
    [InlineData(new byte[] { 0xC0, 0xAF })] // overlong '/'
    [InlineData(new byte[] { 0xE2, 0x82 })] // truncated
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })] // raw surrogate
    public void TryRead_InvalidUtf8InAFieldNobodyReads_InvalidUtf8(byte[] bad)
    {
        var body = Concat("""{"model":"a","note":"x"""u8, bad, "\"}"u8);

        Assert.Equal("invalid_utf8", Violation(body, ProtocolKind.OpenAiChat));
    }

    [Fact]
    public void TryRead_InvalidUtf8InAnEscapedString_InvalidUtf8()
    {
        var body = Concat("""{"model":"a","note":"\n"""u8, [0xFF], "\"}"u8);

        Assert.Equal("invalid_utf8", Violation(body, ProtocolKind.OpenAiChat));
    }

    [Fact]
    public void TryRead_Bom_InvalidJson()
    {
        var body = Concat([0xEF, 0xBB, 0xBF], """{"model":"a"}"""u8, []);

        Assert.Equal("invalid_json", Violation(body, ProtocolKind.OpenAiChat));
    }

    [Theory]
    [InlineData(128, null)]
    [InlineData(129, "max_depth_exceeded")]
    [InlineData(100_000, "max_depth_exceeded")]
    public void TryRead_Nesting_BoundedByMaxDepth(int depth, string? code)
    {
        // The root object is level 1; "x" opens the remaining depth - 1 levels of arrays.
        var body = "{\"model\":\"a\",\"x\":" + new string('[', depth - 1) + new string(']', depth - 1) + "}";

        Assert.Equal(code, Violation(Encoding.UTF8.GetBytes(body), ProtocolKind.OpenAiChat));
    }

    [Fact]
    public void TryRead_ManyKeysInOneObject_DuplicateFoundAtTheEnd()
    {
        var builder = new StringBuilder("{\"model\":\"a\",\"x\":{");
        for (var i = 0; i < 50_000; i++)
        {
            builder.Append('"').Append('k').Append(i).Append("\":1,");
        }

        builder.Append("\"k7\":2}}");

        Assert.Equal("duplicate_key", Violation(Encoding.UTF8.GetBytes(builder.ToString()), ProtocolKind.OpenAiChat));
    }

    [Fact]
    public void TryRead_SameKeyInSiblingObjects_Allowed()
    {
        var summary = Read("""{"model":"a","messages":[{"role":"user","content":"x"},{"role":"user","content":"y"}]}""", ProtocolKind.OpenAiChat);

        Assert.Equal(2, summary.MessageCount);
    }

    [Fact]
    public void TryRead_NonFiniteNumberInAFieldWeDoNotRead_PassesThrough()
    {
        var summary = Read("""{"model":"a","temperature":1e400,"seed":18446744073709551616}""", ProtocolKind.OpenAiChat);

        Assert.Equal("a", summary.Model);
    }

    private static RequestSummary Read(string body, ProtocolKind protocol)
    {
        var summary = new RequestSummary();
        var ok = LlmRequestReader.TryRead(Encoding.UTF8.GetBytes(body), protocol, LlmRequestReader.DefaultMaxDepth, summary, out var violation);
        Assert.True(ok, violation.Message);
        return summary;
    }

    private static string? Violation(byte[] body, ProtocolKind protocol)
    {
        var ok = LlmRequestReader.TryRead(body, protocol, LlmRequestReader.DefaultMaxDepth, new RequestSummary(), out var violation);
        Assert.Equal(ok, violation.IsNone);
        return ok ? null : violation.Code;
    }

    private static byte[] Concat(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, ReadOnlySpan<byte> c) => [.. a, .. b, .. c];
}
