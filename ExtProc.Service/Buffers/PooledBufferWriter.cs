using System.Buffers;

namespace ExtProc.Buffers;

/// <summary>
/// An <see cref="IBufferWriter{T}"/> over pooled arrays, for bodies ExtProc writes (rewritten requests and
/// responses). Whoever owns it disposes it, which clears and returns the array.
/// </summary>
internal sealed class PooledBufferWriter : IBufferWriter<byte>, IDisposable
{
    private byte[]? _buffer;
    private int _written;

    public PooledBufferWriter(int initialCapacity = 1024) => PooledBytes.EnsureCapacity(ref _buffer, 0, initialCapacity);

    public int WrittenCount => _written;

    public ReadOnlyMemory<byte> WrittenMemory => _buffer is null ? default : _buffer.AsMemory(0, _written);

    public ReadOnlySpan<byte> WrittenSpan => _buffer is null ? default : _buffer.AsSpan(0, _written);

    /// <summary>Forgets what was written (and clears it), keeping the array for the next use.</summary>
    public void Clear()
    {
        _buffer.AsSpan(0, _written).Clear();
        _written = 0;
    }

    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (_buffer is null || _written + count > _buffer.Length)
        {
            throw new InvalidOperationException("Advanced past the end of the buffer.");
        }

        _written += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsMemory(_written);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsSpan(_written);
    }

    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = null;
        if (buffer is not null)
        {
            PooledBytes.Return(buffer, _written);
        }

        _written = 0;
    }

    private void Ensure(int sizeHint)
    {
        ObjectDisposedException.ThrowIf(_buffer is null, this);
        PooledBytes.EnsureCapacity(ref _buffer, _written, _written + Math.Max(sizeHint, 256));
    }
}
