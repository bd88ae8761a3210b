using ExtProc.Buffers;

namespace ExtProc.Pipeline;

/// <summary>
/// The body of one direction as far as ExtProc has seen it. A body that arrives in one message is
/// referenced where it lies; one that arrives in chunks is gathered into a pooled buffer, which is
/// cleared before it goes back to the pool because it held a request or response body.
/// </summary>
internal sealed class BodyState : IDisposable
{
    private byte[]? _pooled;
    private int _length;
    private ReadOnlyMemory<byte> _single;
    private bool _hasSingle;
    private PooledBufferWriter? _replacementOwner;

    /// <summary>Set by a stage in the headers phase when it must read this body.</summary>
    public bool Needed { get; set; }

    /// <summary>
    /// Set by a stage in the headers phase to read a STREAMED body chunk by chunk without holding it: the
    /// body phase then runs once per chunk with <see cref="Content"/> = that chunk only, and
    /// <see cref="Complete"/> on the last. The chunk goes on unchanged unless a stage calls <see cref="Replace"/>
    /// for it (Envoy holds each STREAMED chunk until it is answered, so the replacement is what goes on).
    /// </summary>
    public bool ObserveChunks { get; set; }

    /// <summary>True once the whole body has been seen (false for a partial body).</summary>
    public bool Complete { get; internal set; }

    /// <summary>True once any body bytes or an end of body arrived.</summary>
    public bool Started { get; private set; }

    public int Length => _hasSingle ? _single.Length : _length;

    public ReadOnlyMemory<byte> Content => _hasSingle ? _single : _pooled is null ? default : _pooled.AsMemory(0, _length);

    /// <summary>The body a stage wants sent instead of the original, if any.</summary>
    public ReadOnlyMemory<byte>? Replacement { get; private set; }

    public void Replace(ReadOnlyMemory<byte> body) => Replacement = body;

    /// <summary>Replaces the body with what <paramref name="writer"/> holds; the body state now owns (and disposes) it.</summary>
    public void Replace(PooledBufferWriter writer)
    {
        _replacementOwner?.Dispose();
        _replacementOwner = writer;
        Replacement = writer.WrittenMemory;
    }

    /// <summary>Makes <paramref name="chunk"/> the whole content (chunk observation); nothing is kept across chunks.</summary>
    internal void SetChunk(ReadOnlyMemory<byte> chunk)
    {
        Started = true;
        _single = chunk;
        _hasSingle = true;
        Replacement = null;
    }

    internal void Append(ReadOnlyMemory<byte> chunk)
    {
        Started = true;
        if (chunk.IsEmpty)
        {
            return;
        }

        if (!_hasSingle && _pooled is null)
        {
            // First chunk: keep a reference; most bodies arrive in exactly one message.
            _single = chunk;
            _hasSingle = true;
            return;
        }

        if (_hasSingle)
        {
            var first = _single;
            _hasSingle = false;
            _single = default;
            PooledBytes.EnsureCapacity(ref _pooled, 0, first.Length + chunk.Length, minimum: 4096);
            first.Span.CopyTo(_pooled);
            _length = first.Length;
        }
        else
        {
            PooledBytes.EnsureCapacity(ref _pooled, _length, _length + chunk.Length, minimum: 4096);
        }

        chunk.Span.CopyTo(_pooled.AsSpan(_length));
        _length += chunk.Length;
    }

    public void Dispose()
    {
        _replacementOwner?.Dispose();
        _replacementOwner = null;
        Replacement = null;
        var pooled = _pooled;
        _pooled = null;
        _single = default;
        _hasSingle = false;
        if (pooled is not null)
        {
            PooledBytes.Return(pooled, _length);
        }

        _length = 0;
    }
}
