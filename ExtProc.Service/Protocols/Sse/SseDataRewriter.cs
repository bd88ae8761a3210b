using System.Buffers;
using ExtProc.Buffers;
using ExtProc.Pipeline;

namespace ExtProc.Protocols.Sse;

/// <summary>Changes the data of one SSE event; null keeps the event as it was.</summary>
internal interface ISseDataTransform
{
    /// <summary>The new data for an event whose <c>data</c> lines joined give <paramref name="data"/>, or null.</summary>
    byte[]? Transform(ReadOnlySpan<byte> data);
}

/// <summary>
/// Forwards an SSE stream event by event, handing each event's data to a transform. Only the unfinished
/// tail of the stream is held back (bounded by the event limit); comments, ids, retry and priming events
/// pass as they came, in order. Line ends follow the SSE rules (LF, CRLF or CR). An event that outgrows the
/// limit ends the rewriting: the rest of the stream is dropped, never forwarded unchecked.
/// </summary>
internal sealed class SseDataRewriter : IStreamedBodyRewriter, IDisposable
{
    private readonly ISseDataTransform _transform;
    private readonly int _maxEventBytes;
    private readonly ArrayBufferWriter<byte> _output = new(4096);
    private byte[]? _pending;
    private int _pendingLength;
    private bool _overflowed;

    public SseDataRewriter(ISseDataTransform transform, int maxEventBytes)
    {
        _transform = transform;
        _maxEventBytes = maxEventBytes;
    }

    /// <summary>True once an event outgrew the limit and the stream was cut.</summary>
    public bool Overflowed => _overflowed;

    public bool TryRewrite(ReadOnlyMemory<byte> chunk, bool endOfStream, out ReadOnlyMemory<byte> replacement)
    {
        if (_overflowed)
        {
            replacement = default;
            return true;
        }

        PooledBytes.EnsureCapacity(ref _pending, _pendingLength, _pendingLength + chunk.Length, minimum: 4096);
        chunk.Span.CopyTo(_pending.AsSpan(_pendingLength));
        _pendingLength += chunk.Length;
        _output.ResetWrittenCount();

        var data = _pending.AsSpan(0, _pendingLength);
        var consumed = 0;
        var changed = false;
        while (TryFindEventEnd(data[consumed..], out var length))
        {
            changed |= EmitEvent(data.Slice(consumed, length));
            consumed += length;
        }

        var rest = _pendingLength - consumed;
        if (endOfStream && rest > 0)
        {
            // An unterminated last event is not dispatched by SSE clients; it goes on as it came.
            _output.Write(data[consumed..]);
            rest = 0;
            consumed = _pendingLength;
        }
        else if (rest > _maxEventBytes)
        {
            _overflowed = true;
            Clear();
            replacement = _output.WrittenMemory;
            return true;
        }

        if (rest > 0)
        {
            data[consumed..].CopyTo(_pending);
        }

        _pendingLength = rest;
        _pending.AsSpan(rest, consumed).Clear();
        if (!changed && rest == 0 && consumed == chunk.Length)
        {
            // Nothing held back and nothing changed: the chunk goes on as it is, without a copy.
            replacement = default;
            return false;
        }

        replacement = _output.WrittenMemory;
        return true;
    }

    /// <summary>Writes one raw event (including its blank line); true when its data was replaced.</summary>
    private bool EmitEvent(ReadOnlySpan<byte> raw)
    {
        var joined = new ArrayBufferWriter<byte>();
        var hasData = false;
        var rest = raw;
        while (NextLine(ref rest, out var line))
        {
            if (!IsField(line, "data"u8, out var value))
            {
                continue;
            }

            if (hasData)
            {
                joined.Write("\n"u8);
            }

            joined.Write(value);
            hasData = true;
        }

        // An empty data field (the 2025-11-25 priming event) carries no message.
        var replaced = joined.WrittenCount > 0 ? _transform.Transform(joined.WrittenSpan) : null;
        if (replaced is null)
        {
            _output.Write(raw);
            return false;
        }

        // Other fields keep their place and bytes; the data lines become the new data, split on its line ends.
        rest = raw;
        var dataWritten = false;
        while (NextLine(ref rest, out var line))
        {
            if (line.IsEmpty)
            {
                break;
            }

            if (IsField(line, "data"u8, out _))
            {
                if (!dataWritten)
                {
                    WriteData(replaced);
                    dataWritten = true;
                }

                continue;
            }

            _output.Write(line);
            _output.Write("\n"u8);
        }

        _output.Write("\n"u8);
        return true;
    }

    private void WriteData(ReadOnlySpan<byte> data)
    {
        while (true)
        {
            var end = data.IndexOfAny((byte)'\r', (byte)'\n');
            _output.Write("data: "u8);
            _output.Write(end < 0 ? data : data[..end]);
            _output.Write("\n"u8);
            if (end < 0)
            {
                return;
            }

            var skip = data[end] == '\r' && end + 1 < data.Length && data[end + 1] == '\n' ? 2 : 1;
            data = data[(end + skip)..];
        }
    }

    private static bool IsField(ReadOnlySpan<byte> line, ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        value = default;
        if (!line.StartsWith(name))
        {
            return false;
        }

        var after = line[name.Length..];
        if (after.IsEmpty)
        {
            return true;
        }

        if (after[0] != ':')
        {
            return false;
        }

        value = after[1..];
        if (!value.IsEmpty && value[0] == ' ')
        {
            value = value[1..];
        }

        return true;
    }

    /// <summary>The next line without its line end; false when no complete line is left.</summary>
    private static bool NextLine(ref ReadOnlySpan<byte> text, out ReadOnlySpan<byte> line)
    {
        var end = text.IndexOfAny((byte)'\r', (byte)'\n');
        if (end < 0)
        {
            line = default;
            return false;
        }

        line = text[..end];
        var skip = text[end] == '\r' && end + 1 < text.Length && text[end + 1] == '\n' ? 2 : 1;
        text = text[(end + skip)..];
        return true;
    }

    /// <summary>
    /// Length of the first complete event (through its blank line). A CR at the very end of the buffer is not
    /// trusted as a line end yet: the LF of a CRLF may be in the next chunk.
    /// </summary>
    private static bool TryFindEventEnd(ReadOnlySpan<byte> data, out int length)
    {
        var position = 0;
        var lineStart = 0;
        while (position < data.Length)
        {
            var offset = data[position..].IndexOfAny((byte)'\r', (byte)'\n');
            if (offset < 0)
            {
                break;
            }

            var end = position + offset;
            int next;
            if (data[end] == '\r')
            {
                if (end + 1 >= data.Length)
                {
                    break;
                }

                next = data[end + 1] == '\n' ? end + 2 : end + 1;
            }
            else
            {
                next = end + 1;
            }

            if (end == lineStart)
            {
                length = next;
                return true;
            }

            lineStart = next;
            position = next;
        }

        length = 0;
        return false;
    }

    private void Clear()
    {
        if (_pending is not null)
        {
            _pending.AsSpan(0, _pendingLength).Clear();
        }

        _pendingLength = 0;
    }

    public void Dispose()
    {
        var pending = _pending;
        _pending = null;
        if (pending is not null)
        {
            PooledBytes.Return(pending, _pendingLength);
        }

        _pendingLength = 0;
    }
}
