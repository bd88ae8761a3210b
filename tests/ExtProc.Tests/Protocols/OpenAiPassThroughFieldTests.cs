using System.Text;
using ExtProc.Protocols;
using ExtProc.Protocols.Json;

namespace ExtProc.Tests.Protocols;

/// <summary>OpenAI fields we guard but do not read: the exact spelling passes, fold variants are refused.</summary>
public sealed class OpenAiPassThroughFieldTests
{
    [Theory]
    [InlineData("stream_options", """{"include_usage":true}""", true)]
    [InlineData("n", "1", true)]
    [InlineData("functions", "[]", true)]
    [InlineData("function_call", "\"auto\"", true)]
    [InlineData("Stream_Options", """{"include_usage":true}""", false)]
    [InlineData("N", "1", false)]
    [InlineData("FUNCTIONS", "[]", false)]
    public void TryRead_PassThroughField_ExactSpellingOnly(string name, string value, bool accepted)
    {
        var body = $$"""{"model":"gpt-4o-mini","stream":true,"{{name}}":{{value}},"messages":[]}""";

        var ok = LlmRequestReader.TryRead(Encoding.UTF8.GetBytes(body), ProtocolKind.OpenAiChat, 64, new RequestSummary(), out var violation);

        Assert.Equal(accepted, ok);
        if (!accepted)
        {
            Assert.Equal(JsonViolationKind.AmbiguousField, violation.Kind);
        }
    }
}
