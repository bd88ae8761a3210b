using System.Text.Json;
using ExtProc.Buffers;
using ExtProc.Protocols;

namespace ExtProc.Translation.Common;

/// <summary>
/// The tool-call ids one request rewrote, remembered by the id's bytes as sent: a tool result repeats the
/// id of the call before it, and the hash behind a rewrite costs more than the rest of that message's
/// translation. Only the last few are kept (results follow their calls closely); a miss just hashes again.
/// Per request, never shared (an id is a tenant's data). Pooled: dispose it.
/// </summary>
internal struct RewrittenIds : IDisposable
{
    private const int Remembered = 16;

    private PooledList<Entry> _entries;
    private byte[]? _rewritten;
    private int _used;

    /// <summary>Writes the upstream form of a tool-call id from its JSON string slice; true when it was rewritten.</summary>
    public bool Write(Utf8JsonWriter writer, JsonEncodedText property, ReadOnlySpan<byte> document, JsonSlice id, ProtocolKind upstream, UpstreamDialect dialect)
    {
        var sent = id.Kind(document) == JsonTokenType.String ? id.In(document) : default;
        for (var i = _entries.Count - 1; i >= 0 && i >= _entries.Count - Remembered; i--)
        {
            var entry = _entries[i];
            if (entry.Sent.In(document).SequenceEqual(sent))
            {
                writer.WriteString(property, _rewritten.AsSpan(entry.Offset, entry.Length));
                return true;
            }
        }

        Span<byte> rewritten = stackalloc byte[ToolNaming.MaxRewrittenIdLength];
        if (!ToolNaming.WriteToolCallId(writer, property, document, id, upstream, dialect, rewritten, out var length))
        {
            return false;
        }

        if (sent.Length > 0)
        {
            PooledBytes.EnsureCapacity(ref _rewritten, _used, _used + length, minimum: 256);
            rewritten[..length].CopyTo(_rewritten.AsSpan(_used));
            _entries.Add(new Entry(id, _used, length));
            _used += length;
        }

        return true;
    }

    public void Dispose()
    {
        _entries.Dispose();
        if (_rewritten is not null)
        {
            PooledBytes.Return(_rewritten, _used);
            _rewritten = null;
            _used = 0;
        }
    }

    private readonly record struct Entry(JsonSlice Sent, int Offset, int Length);
}
