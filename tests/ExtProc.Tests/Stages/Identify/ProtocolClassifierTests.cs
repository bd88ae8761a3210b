using System.Text;
using ExtProc.Protocols;
using ExtProc.Stages.Identify;

namespace ExtProc.Tests.Stages.Identify;

public sealed class ProtocolClassifierTests
{
    private static readonly ProtocolClassifier Classifier = new(["/mcp", "/tools/MCP/"]);

    [Theory]
    [InlineData("/v1/chat/completions", "OpenAiChat")]
    [InlineData("/v1/chat/completions?api-version=2024-10-21", "OpenAiChat")]
    [InlineData("/openai/deployments/gpt4o/chat/completions?api-version=1", "OpenAiChat")]
    [InlineData("/compatible-mode/v1/chat/completions", "OpenAiChat")]
    [InlineData("/V1/Chat/Completions", "OpenAiChat")]
    [InlineData("//v1//chat///completions/", "OpenAiChat")]
    [InlineData("/v1/chat/%63ompletions", "OpenAiChat")]
    [InlineData("/v1/chat%2Fcompletions", "OpenAiChat")]
    [InlineData("/v1/x/../chat/./completions", "OpenAiChat")]
    [InlineData("/v1\\chat\\completions", "OpenAiChat")]
    [InlineData("/v1/messages", "AnthropicMessages")]
    [InlineData("/v1/messages?beta=true", "AnthropicMessages")]
    [InlineData("/v1beta/models/gemini-2.0-flash:generateContent", "Gemini")]
    [InlineData("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", "Gemini")]
    [InlineData("/v1/projects/p/locations/l/publishers/google/models/gemini:generateContent", "Gemini")]
    [InlineData("/mcp", "Mcp")]
    [InlineData("/mcp/", "Mcp")]
    [InlineData("/mcp/github", "Mcp")]
    [InlineData("/MCP?session=1", "Mcp")]
    [InlineData("/tools/mcp", "Mcp")]
    [InlineData("/mcpx", "Other")]
    [InlineData("/v1/models", "Other")]
    [InlineData("/v1/messages/count_tokens", "Other")]
    [InlineData("/", "Other")]
    [InlineData("", "Other")]
    [InlineData("/v1/chat/completions/../../../healthz", "Other")]
    [InlineData("/../../v1/chat/completions", "OpenAiChat")]
    public void Classify_PathVariants_IdentifiedAsAnUpstreamWouldRouteThem(string path, string expected) =>
        Assert.Equal(Enum.Parse<ProtocolKind>(expected), Classifier.Classify(Encoding.UTF8.GetBytes(path)));

    [Fact]
    public void Classify_VeryLongPath_UsesPooledScratchAndStillClassifies()
    {
        var path = "/" + new string('a', 5000) + "/v1/chat/completions";

        Assert.Equal(ProtocolKind.OpenAiChat, Classifier.Classify(Encoding.UTF8.GetBytes(path)));
    }

    [Theory]
    [InlineData("/a/b/../c", "/a/c")]
    [InlineData("/a/./b/", "/a/b")]
    [InlineData("/..", "/")]
    [InlineData("/A%2fB?q=1#f", "/a/b")]
    public void NormalizePath_Examples(string input, string expected)
    {
        var raw = Encoding.UTF8.GetBytes(input);
        var output = new byte[raw.Length + 1];

        var length = ProtocolClassifier.NormalizePath(raw, output);

        Assert.Equal(expected, Encoding.UTF8.GetString(output, 0, length));
    }

    [Theory]
    [InlineData("application/json", true)]
    [InlineData("Application/JSON; charset=utf-8", true)]
    [InlineData(" application/json ;charset=utf-8", true)]
    [InlineData("application/jsonx", false)]
    [InlineData("text/plain", false)]
    [InlineData("", false)]
    public void IsJson_MediaTypes(string contentType, bool expected) =>
        Assert.Equal(expected, ProtocolIdentificationStage.IsJson(Encoding.UTF8.GetBytes(contentType)));
}
