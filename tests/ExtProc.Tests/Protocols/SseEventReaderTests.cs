using System.Text;
using ExtProc.Protocols.Sse;

namespace ExtProc.Tests.Protocols;

public sealed class SseEventReaderTests
{
    public static TheoryData<string, string[]> Streams() => new()
    {
        // OpenAI: data-only frames ending with [DONE]
        { "data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n", ["|{\"a\":1}|", "|{\"a\":2}|", "|[DONE]|"] },
        // Anthropic: named events
        { "event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: ping\ndata: {}\n\n", ["message_start|{\"type\":\"message_start\"}|", "ping|{}|"] },
        // CRLF and CR line ends, no space after the colon, multi-line data, comments, blank lines
        { ": keep-alive\r\n\r\ndata:x\r\ndata: y\r\n\r\n\r\ndata: z\r\rdata: w\n\n", ["|x\ny|", "|z|", "|w|"] },
        // id persists across events; an id with NUL is ignored; unknown fields and retry are ignored
        { "id: 7\ndata: a\n\nretry: 10\nfoo: bar\ndata: b\n\nid: 8\u0000\ndata: c\n\n", ["|a|7", "|b|7", "|c|7"] },
        // a leading BOM; an event name without data is not dispatched and does not leak
        { "\uFEFFevent: orphan\n\ndata: d\n\n", ["|d|"] },
        // data with an empty value, and "data" with no colon
        { "data\ndata\n\n", ["|\n|"] },
    };

    [Theory]
    [MemberData(nameof(Streams))]
    public void Events_StreamSplitAtEveryByte_SameEvents(string stream, string[] expected)
    {
        var bytes = Encoding.UTF8.GetBytes(stream);
        for (var split = 0; split <= bytes.Length; split++)
        {
            Assert.Equal(expected, Read([bytes[..split], bytes[split..]]));
        }

        Assert.Equal(expected, Read(bytes.Select(b => new[] { b }).ToArray()));
    }

    [Fact]
    public void IncompleteEvent_NotDispatchedUntilItsBlankLine()
    {
        using var reader = new SseEventReader();
        reader.Append("data: partial\n"u8);

        Assert.False(reader.TryReadEvent(out _));
        reader.Append("\n"u8);
        Assert.True(reader.TryReadEvent(out var e));
        Assert.Equal("partial", Encoding.UTF8.GetString(e.Data));
    }

    [Fact]
    public void EventOverTheLimit_Refused()
    {
        using var reader = new SseEventReader(maxEventBytes: 64);

        Assert.True(reader.Append(Encoding.UTF8.GetBytes("data: " + new string('x', 40) + "\n")));
        Assert.False(reader.TryReadEvent(out _));
        Assert.False(reader.Append(Encoding.UTF8.GetBytes("data: " + new string('y', 40) + "\n")) && reader.TryReadEvent(out _));
    }

    [Fact]
    public void ManyEvents_PendingStaysBoundedByOneEvent()
    {
        using var reader = new SseEventReader(maxEventBytes: 256);
        var frame = Encoding.UTF8.GetBytes("data: {\"delta\":\"token\"}\n\n");
        var count = 0;
        for (var i = 0; i < 10_000; i++)
        {
            Assert.True(reader.Append(frame));
            while (reader.TryReadEvent(out _))
            {
                count++;
            }

            Assert.True(reader.PendingBytes < frame.Length);
        }

        Assert.Equal(10_000, count);
    }

    private static List<string> Read(byte[][] chunks)
    {
        using var reader = new SseEventReader();
        var events = new List<string>();
        foreach (var chunk in chunks)
        {
            Assert.True(reader.Append(chunk));
            while (reader.TryReadEvent(out var e))
            {
                events.Add($"{Encoding.UTF8.GetString(e.EventName)}|{Encoding.UTF8.GetString(e.Data)}|{(e.HasId ? Encoding.UTF8.GetString(e.Id) : "")}");
            }
        }

        return events;
    }
}
