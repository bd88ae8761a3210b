using System.Buffers;
using ExtProc.Buffers;

namespace ExtProc.Translation.Common;

/// <summary>An <see cref="IBufferWriter{T}"/> over pooled arrays, cleared when returned (it holds bodies).</summary>
internal sealed class PooledBufferWriter : IBufferWriter<byte>, IDisposable
{
    private byte[]? _buffer;
    private int _written;

    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _written);

    public void Advance(int count) => _written += count;

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        PooledBytes.EnsureCapacity(ref _buffer, _written, _written + Math.Max(sizeHint, 256), minimum: 4096);
        return _buffer.AsMemory(_written);
    }

    public Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    public void Dispose()
    {
        if (_buffer is not null)
        {
            PooledBytes.Return(_buffer, _written);
            _buffer = null;
            _written = 0;
        }
    }
}
