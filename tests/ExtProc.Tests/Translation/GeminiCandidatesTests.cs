using System.Buffers;
using System.Text;

namespace ExtProc.Tests.Translation;

/// <summary>
/// Gemini candidates read once in the top-level pass: a malformed candidate or part still fails the whole
/// response or event before anything is written, and an <c>error</c> field still wins over malformed candidates.
/// </summary>
public sealed class GeminiCandidatesTests
{
    [Theory]
    [InlineData("""{"candidates":[1]}""")]
    [InlineData("""{"candidates":{"content":{}}}""")]
    [InlineData("""{"candidates":[{"content":{"parts":[{"text":"Hi"}]}},{"content":{"parts":"x"}}]}""")]
    [InlineData("""{"candidates":[{"content":{"parts":[{"text":"Hi"},{"functionCall":3}]}}]}""")]
    public void Buffered_MalformedCandidateOrPart_MalformedResponseError(string body)
    {
        var output = Buffered(body);

        Assert.Contains("The upstream returned a malformed response.", output, StringComparison.Ordinal);
        Assert.DoesNotContain("\"Hi\"", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Stream_MalformedPartAfterText_NoTextFromThatEvent()
    {
        var output = Stream(
            """data: {"candidates":[{"content":{"parts":[{"text":"First"}]}}]}""",
            """data: {"candidates":[{"content":{"parts":[{"text":"Lost"},7]}}]}""");

        Assert.Contains("First", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Lost", output, StringComparison.Ordinal);
        Assert.Contains("The upstream sent a malformed stream event.", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Stream_ErrorFieldWithMalformedCandidates_UpstreamErrorReported()
    {
        var output = Stream("""data: {"candidates":[1],"error":{"code":429,"message":"Quota exhausted","status":"RESOURCE_EXHAUSTED"}}""");

        Assert.Contains("Quota exhausted", output, StringComparison.Ordinal);
        Assert.DoesNotContain("malformed", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Stream_CandidatesNotJson_MalformedEvent()
    {
        var output = Stream("""data: {"candidates":[{"content":{"parts":[{"text":"x"}]}},tru]}""");

        Assert.Contains("The upstream sent a malformed stream event.", output, StringComparison.Ordinal);
    }

    private static string Buffered(string body)
    {
        var written = new ArrayBufferWriter<byte>();
        TranslationGolden.Direction("openai-to-gemini").TranslateResponse(
            new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(body)), 200, TranslationGolden.State("openai-to-gemini", stream: false), written);
        return Encoding.UTF8.GetString(written.WrittenSpan);
    }

    private static string Stream(params string[] events)
    {
        var written = new ArrayBufferWriter<byte>();
        using var stream = TranslationGolden.Direction("openai-to-gemini").CreateStreamTranslator(TranslationGolden.State("openai-to-gemini", stream: true));
        stream.Process(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(string.Join("\n\n", events) + "\n\n")), endOfStream: true, written);
        return Encoding.UTF8.GetString(written.WrittenSpan);
    }
}
