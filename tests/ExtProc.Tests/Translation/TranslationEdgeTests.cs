using System.Buffers;
using System.Text;
using ExtProc.Protocols;
using ExtProc.Translation;

namespace ExtProc.Tests.Translation;

/// <summary>Bad and awkward input around the golden suite: segmented bodies, repeated keys, oversized events, input after the end.</summary>
public sealed class TranslationEdgeTests
{
    private static readonly RequestTranslationInput Input = new("claude-sonnet-4-5", "req-edge", 1700000000);

    [Theory]
    [InlineData("openai-to-anthropic")]
    [InlineData("anthropic-to-openai")]
    [InlineData("openai-to-gemini")]
    [InlineData("openai-to-mistral")]
    public void TranslateRequest_BodyInManySegments_SameAsContiguous(string direction)
    {
        var body = File.ReadAllBytes(Path.Combine(TranslationGolden.Root, direction, "request", direction.StartsWith("anthropic", StringComparison.Ordinal) ? "tool-history.json" : FirstRequest(direction)));
        var translator = TranslationGolden.Direction(direction);
        var whole = new ArrayBufferWriter<byte>();
        var split = new ArrayBufferWriter<byte>();

        var a = translator.TranslateRequest(new ReadOnlySequence<byte>(body), Input, whole, out _);
        var b = translator.TranslateRequest(Segmented(body, 7), Input, split, out _);

        Assert.Equal(a.Status, b.Status);
        Assert.Equal(whole.WrittenSpan.ToArray(), split.WrittenSpan.ToArray());
    }

    [Theory]
    [InlineData("""{"model":"gpt-4o","model":"other","messages":[{"role":"user","content":"Hi"}]}""")]
    [InlineData("""{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"messages":[]}""")]
    [InlineData("""{"model":"gpt-4o"}""")]
    [InlineData("""[1,2]""")]
    public void TranslateRequest_RepeatedOrMissingFields_RefusedAsInvalidBody(string body)
    {
        var result = TranslationGolden.Direction("openai-to-anthropic").TranslateRequest(
            new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(body)), Input, new ArrayBufferWriter<byte>(), out var state);

        Assert.Equal(TranslationStatus.Failed, result.Status);
        Assert.Equal(TranslationErrors.InvalidBody, result.Error!.Value.Error);
        Assert.Null(state);
    }

    [Fact]
    public void Stream_EventOverTheLimit_OneErrorThenNothing()
    {
        var direction = TranslationGolden.Direction("openai-to-anthropic");
        var state = TranslationGolden.State("openai-to-anthropic", stream: true);
        var output = new ArrayBufferWriter<byte>();
        using var stream = direction.CreateStreamTranslator(state);
        var huge = Encoding.UTF8.GetBytes("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"" + new string('x', 2 * 1024 * 1024));

        stream.Process(new ReadOnlySequence<byte>(huge), endOfStream: false, output);
        var afterError = output.WrittenCount;
        stream.Process(new ReadOnlySequence<byte>("\"}}\n\n"u8.ToArray()), endOfStream: true, output);

        var text = Encoding.UTF8.GetString(output.WrittenSpan);
        Assert.StartsWith("data: {\"error\":", text);
        Assert.EndsWith("}\n\n", text);
        Assert.Equal(afterError, output.WrittenCount);
    }

    [Fact]
    public void Stream_NoInputAtAll_WellFormedErrorInClientDialect()
    {
        var direction = TranslationGolden.Direction("anthropic-to-openai");
        var output = new ArrayBufferWriter<byte>();
        using var stream = direction.CreateStreamTranslator(TranslationGolden.State("anthropic-to-openai", stream: true));

        stream.Process(ReadOnlySequence<byte>.Empty, endOfStream: true, output);

        Assert.StartsWith("event: error\ndata: {\"type\":\"error\"", Encoding.UTF8.GetString(output.WrittenSpan));
    }

    [Fact]
    public void Translators_SameSchemaStandardDialect_NoTranslator()
    {
        Assert.False(Translators.TryGet(ProtocolKind.OpenAiChat, ProtocolKind.OpenAiChat, UpstreamDialect.Standard, out _));
        Assert.False(Translators.TryGet(ProtocolKind.AnthropicMessages, ProtocolKind.Gemini, UpstreamDialect.Standard, out _));
        Assert.True(Translators.TryGet(ProtocolKind.OpenAiChat, ProtocolKind.OpenAiChat, UpstreamDialect.Azure, out _));
    }

    private static string FirstRequest(string direction) =>
        Path.GetFileName(Directory.GetFiles(Path.Combine(TranslationGolden.Root, direction, "request"), "tool*.json").First(f => !f.Contains(".expected", StringComparison.Ordinal)));

    private static ReadOnlySequence<byte> Segmented(byte[] body, int size)
    {
        Segment? first = null, last = null;
        for (var offset = 0; offset < body.Length; offset += size)
        {
            var next = new Segment(body.AsMemory(offset, Math.Min(size, body.Length - offset)), last);
            first ??= next;
            last = next;
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, Segment? previous)
        {
            Memory = memory;
            if (previous is not null)
            {
                RunningIndex = previous.RunningIndex + previous.Memory.Length;
                previous.Next = this;
            }
        }
    }
}
