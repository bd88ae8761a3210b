using System.Buffers;

namespace ExtProc.Buffers;

/// <summary>
/// Growing and returning <see cref="ArrayPool{T}.Shared"/> byte buffers that may hold request or response
/// bytes: the used part is always cleared before a buffer goes back to the pool.
/// </summary>
internal static class PooledBytes
{
    /// <summary>Makes <paramref name="buffer"/> hold at least <paramref name="needed"/> bytes, keeping its first <paramref name="used"/>.</summary>
    public static void EnsureCapacity(ref byte[]? buffer, int used, int needed, int minimum = 1024)
    {
        if (buffer is not null && buffer.Length >= needed)
        {
            return;
        }

        var larger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, buffer is null ? minimum : buffer.Length * 2));
        if (buffer is not null)
        {
            buffer.AsSpan(0, used).CopyTo(larger);
            Return(buffer, used);
        }

        buffer = larger;
    }

    /// <summary>Clears the used part and returns the buffer to the pool.</summary>
    public static void Return(byte[] buffer, int used)
    {
        buffer.AsSpan(0, used).Clear();
        ArrayPool<byte>.Shared.Return(buffer);
    }
}
