using ExtProc.Buffers;

namespace ExtProc.Protocols.Sse;

/// <summary>
/// Incremental Server-Sent Events reader (the WHATWG event-stream rules) for response bodies that arrive in
/// arbitrary chunks: lines end in LF, CRLF or CR (a CR at the end of one chunk and an LF at the start of the
/// next are one line end), "data:" with or without the space, multi-line data, comments, event names, ids, a
/// leading BOM. Memory is bounded: an event larger than the limit is an error, never an unbounded buffer.
/// Not thread-safe; one per response stream.
/// </summary>
internal sealed class SseEventReader : IDisposable
{
    private readonly int _maxEventBytes;
    private byte[]? _pending;
    private int _pendingStart;
    private int _pendingEnd;
    private byte[]? _data;
    private int _dataLength;
    private bool _hasData;
    private byte[]? _field;
    private int _eventLength;
    private int _idLength;
    private bool _hasId;
    private bool _skipLf;
    private bool _started;
    private bool _dispatched;

    public SseEventReader(int maxEventBytes = 1024 * 1024) => _maxEventBytes = maxEventBytes;

    /// <summary>Adds the next chunk of the stream. False when an event outgrew the limit.</summary>
    public bool Append(ReadOnlySpan<byte> chunk)
    {
        if (!_started && chunk.Length > 0)
        {
            _started = true;
            if (chunk.StartsWith("\xEF\xBB\xBF"u8))
            {
                chunk = chunk[3..];
            }
        }

        var unread = _pendingEnd - _pendingStart;
        if (unread + chunk.Length > _maxEventBytes)
        {
            return false;
        }

        if (_pending is not null && _pendingStart > 0)
        {
            // Move what is left to the front before growing: the buffer never holds more than one event.
            _pending.AsSpan(_pendingStart, unread).CopyTo(_pending);
            _pending.AsSpan(unread, _pendingStart).Clear();
            _pendingStart = 0;
            _pendingEnd = unread;
        }

        PooledBytes.EnsureCapacity(ref _pending, _pendingEnd, _pendingEnd + chunk.Length, minimum: 4096);
        chunk.CopyTo(_pending.AsSpan(_pendingEnd));
        _pendingEnd += chunk.Length;
        return true;
    }

    /// <summary>
    /// The next complete event, if one has fully arrived. Its spans stay valid until the next call to
    /// <see cref="TryReadEvent"/> or <see cref="Append"/>.
    /// </summary>
    public bool TryReadEvent(out SseEvent sseEvent)
    {
        sseEvent = default;
        if (!TryStartNewEvent())
        {
            return false;
        }

        while (TryReadLine(out var line))
        {
            if (line.IsEmpty)
            {
                if (!_hasData)
                {
                    // A blank line without data dispatches nothing (only resets the event name).
                    ResetEventName();
                    continue;
                }

                // Dispatch: data loses its final line feed.
                _dispatched = true;
                sseEvent = new SseEvent(
                    _field.AsSpan(0, _eventLength),
                    _data.AsSpan(0, Math.Max(0, _dataLength - 1)),
                    _hasId ? _field.AsSpan(_eventLength, _idLength) : default,
                    _hasId);
                return true;
            }

            if (!ProcessLine(line))
            {
                return false;
            }
        }

        return false;
    }

    /// <summary>The bytes waiting for the rest of their event (for tests and diagnostics).</summary>
    public int PendingBytes => _pendingEnd - _pendingStart;

    public void Dispose()
    {
        if (_pending is not null)
        {
            PooledBytes.Return(_pending, _pendingEnd);
            _pending = null;
        }

        if (_data is not null)
        {
            PooledBytes.Return(_data, _dataLength);
            _data = null;
        }

        if (_field is not null)
        {
            PooledBytes.Return(_field, _eventLength + _idLength);
            _field = null;
        }
    }

    private bool TryStartNewEvent()
    {
        if (_dispatched)
        {
            // The previous event was handed out; its data and name are done with (the id persists).
            _dispatched = false;
            _dataLength = 0;
            _hasData = false;
            ResetEventName();
        }

        return _pending is not null;
    }

    // The id outlives the event; the name does not. _field holds the name followed by the id.
    private void ResetEventName()
    {
        if (_eventLength > 0 && _field is not null)
        {
            _field.AsSpan(_eventLength, _idLength).CopyTo(_field);
            _eventLength = 0;
        }
    }

    private bool TryReadLine(out ReadOnlySpan<byte> line)
    {
        line = default;
        var span = _pending.AsSpan(_pendingStart, _pendingEnd - _pendingStart);
        if (_skipLf && span.Length > 0)
        {
            _skipLf = false;
            if (span[0] == (byte)'\n')
            {
                _pendingStart++;
                span = span[1..];
            }
        }

        var end = span.IndexOfAny((byte)'\r', (byte)'\n');
        if (end < 0)
        {
            return false;
        }

        line = span[..end];
        var consumed = end + 1;
        if (span[end] == (byte)'\r')
        {
            if (end + 1 < span.Length)
            {
                if (span[end + 1] == (byte)'\n')
                {
                    consumed++;
                }
            }
            else
            {
                // The LF of a CRLF may be the first byte of the next chunk.
                _skipLf = true;
            }
        }

        _pendingStart += consumed;
        return true;
    }

    private bool ProcessLine(ReadOnlySpan<byte> line)
    {
        if (line[0] == (byte)':')
        {
            return true; // comment (keep-alive)
        }

        var colon = line.IndexOf((byte)':');
        var name = colon < 0 ? line : line[..colon];
        var value = colon < 0 ? default : line[(colon + 1)..];
        if (!value.IsEmpty && value[0] == (byte)' ')
        {
            value = value[1..];
        }

        if (name.SequenceEqual("data"u8))
        {
            if (_dataLength + value.Length + 1 > _maxEventBytes)
            {
                return false;
            }

            PooledBytes.EnsureCapacity(ref _data, _dataLength, _dataLength + value.Length + 1, minimum: 1024);
            value.CopyTo(_data.AsSpan(_dataLength));
            _dataLength += value.Length;
            _data![_dataLength++] = (byte)'\n';
            _hasData = true;
        }
        else if (name.SequenceEqual("event"u8))
        {
            SetField(value, isId: false);
        }
        else if (name.SequenceEqual("id"u8) && value.IndexOf((byte)0) < 0)
        {
            SetField(value, isId: true);
        }

        // "retry" and unknown fields are ignored, as the standard says.
        return true;
    }

    // _field holds the event name followed by the last id.
    private void SetField(ReadOnlySpan<byte> value, bool isId)
    {
        var eventName = isId ? _field.AsSpan(0, _eventLength) : value;
        var id = isId ? value : _field.AsSpan(_eventLength, _idLength);
        var needed = eventName.Length + id.Length;
        var scratch = needed <= 256 ? stackalloc byte[256] : new byte[needed];
        eventName.CopyTo(scratch);
        id.CopyTo(scratch[eventName.Length..]);
        PooledBytes.EnsureCapacity(ref _field, 0, needed, minimum: 128);
        scratch[..needed].CopyTo(_field);
        _eventLength = eventName.Length;
        _idLength = id.Length;
        _hasId |= isId;
    }
}

/// <summary>One dispatched event: spans into the reader's buffers, valid until its next call.</summary>
internal readonly ref struct SseEvent
{
    public SseEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, ReadOnlySpan<byte> id, bool hasId)
    {
        EventName = eventName;
        Data = data;
        Id = id;
        HasId = hasId;
    }

    /// <summary>The event type; empty means the default "message".</summary>
    public ReadOnlySpan<byte> EventName { get; }

    public ReadOnlySpan<byte> Data { get; }

    public ReadOnlySpan<byte> Id { get; }

    public bool HasId { get; }
}
