using System.Text;
using ExtProc.Protocols.Sse;

namespace ExtProc.Tests.Protocols;

/// <summary>The event-by-event SSE rewriter: the same output at every split, SSE line ends, nothing lost.</summary>
public sealed class SseDataRewriterTests
{
    /// <summary>Replaces data "secret" by "hidden"; every other event stays as it came.</summary>
    private sealed class HideSecret : ISseDataTransform
    {
        public byte[]? Transform(ReadOnlySpan<byte> data) => data.SequenceEqual("secret"u8) ? "hidden"u8.ToArray() : null;
    }

    private static string Run(string stream, params int[] cuts)
    {
        using var rewriter = new SseDataRewriter(new HideSecret(), 1024);
        var bytes = Encoding.UTF8.GetBytes(stream);
        var output = new StringBuilder();
        var start = 0;
        foreach (var cut in cuts.Append(bytes.Length))
        {
            var chunk = bytes.AsMemory(start, cut - start);
            var end = cut == bytes.Length;
            output.Append(Encoding.UTF8.GetString(rewriter.TryRewrite(chunk, end, out var replacement) ? replacement.Span : chunk.Span));
            start = cut;
        }

        return output.ToString();
    }

    [Theory]
    [InlineData("id: 1\ndata:\n\n: ping\n\nevent: message\ndata: secret\n\ndata: open\n\n", "id: 1\ndata:\n\n: ping\n\nevent: message\ndata: hidden\n\ndata: open\n\n")]
    [InlineData("data: secret\r\n\r\ndata: x\r\n\r\n", "data: hidden\n\ndata: x\r\n\r\n")] // CRLF
    [InlineData("data:secret\r\rdata: x\r\r", "data: hidden\n\ndata: x\r\r")] // CR only
    [InlineData("retry: 500\nid: 9\ndata: secret\n\n", "retry: 500\nid: 9\ndata: hidden\n\n")] // other fields keep their place
    public void EverySplit_SameOutput(string stream, string expected)
    {
        Assert.Equal(expected, Run(stream));
        var length = Encoding.UTF8.GetByteCount(stream);
        for (var cut = 1; cut < length; cut++)
        {
            Assert.Equal(expected, Run(stream, cut));
        }

        var everyByte = Enumerable.Range(1, length - 1).ToArray();
        Assert.Equal(expected, Run(stream, everyByte));
    }

    [Fact]
    public void UnterminatedLastEvent_PassedOnAtTheEnd()
    {
        Assert.Equal("data: x\n\ndata: partial", Run("data: x\n\ndata: partial", 3));
    }

    [Fact]
    public void EventOverTheLimit_StreamCut_NothingUncheckedForwarded()
    {
        using var rewriter = new SseDataRewriter(new HideSecret(), 16);

        var first = rewriter.TryRewrite(Encoding.UTF8.GetBytes("data: ok\n\ndata: " + new string('a', 40)), false, out var replacement);
        var rest = rewriter.TryRewrite(Encoding.UTF8.GetBytes("\n\n"), true, out var tail);

        Assert.True(first);
        Assert.Equal("data: ok\n\n", Encoding.UTF8.GetString(replacement.Span));
        Assert.True(rest);
        Assert.True(tail.IsEmpty);
        Assert.True(rewriter.Overflowed);
    }
}
