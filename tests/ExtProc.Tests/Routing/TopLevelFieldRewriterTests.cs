using System.Text;
using System.Text.Json;
using ExtProc.Buffers;
using ExtProc.Protocols.Json;

namespace ExtProc.Tests.Routing;

public sealed class TopLevelFieldRewriterTests
{
    private static string Rewrite(string body, string value)
    {
        using var output = new PooledBufferWriter(16);
        TopLevelFieldRewriter.SetString(Encoding.UTF8.GetBytes(body), "model"u8, Encoding.UTF8.GetBytes(value), output);
        return Encoding.UTF8.GetString(output.WrittenSpan);
    }

    [Theory]
    [InlineData("""{"model":"a","messages":[{"role":"user","content":"x \u00e9 \"q\""}],"temperature":0.10}""",
        """{"model":"b","messages":[{"role":"user","content":"x \u00e9 \"q\""}],"temperature":0.10}""")]
    [InlineData("""{ "messages" : [ 1 , 2 ] , "model" : "a" }""", """{"messages":[ 1 , 2 ],"model":"b"}""")]
    [InlineData("""{"mod\u0065l":"a","x":{"model":"keep"}}""", """{"model":"b","x":{"model":"keep"}}""")]
    [InlineData("""{"x":1}""", """{"x":1,"model":"b"}""")]
    public void SetString_ReplacesOnlyTheTopLevelField_OtherValuesByteForByte(string body, string expected) =>
        Assert.Equal(expected, Rewrite(body, "b"));

    [Fact]
    public void SetString_ValueNeedingEscapes_WrittenAsValidJson()
    {
        var output = Rewrite("""{"model":"a"}""", "we\"ird</model>");

        using var json = JsonDocument.Parse(output);
        Assert.Equal("we\"ird</model>", json.RootElement.GetProperty("model").GetString());
    }

    [Fact]
    public void SetString_LongEscapedKey_StillUnescaped()
    {
        var longKey = new string('k', 300);
        var body = $$"""{"\u006b{{longKey}}":1,"model":"a"}""";

        var output = Rewrite(body, "b");

        Assert.Equal($$"""{"k{{longKey}}":1,"model":"b"}""", output);
    }
}
