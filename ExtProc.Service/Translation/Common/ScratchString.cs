using System.Text.Json;
using ExtProc.Buffers;

namespace ExtProc.Translation.Common;

/// <summary>
/// The unescaped UTF-8 of a JSON string slice: the bytes between the quotes when there is nothing to
/// unescape (the common case, no copy), else an unescaped copy in the caller's <c>scratch</c> (a small
/// stack buffer) when it fits, or in a pooled buffer that Dispose clears and returns.
/// </summary>
internal ref struct ScratchString
{
    /// <summary>A stack scratch size that holds the usual id, name or tool-arguments string.</summary>
    public const int StackSize = 256;

    private byte[]? _rented;
    private readonly int _length;

    public ScratchString(ReadOnlySpan<byte> document, JsonSlice slice)
        : this(document, slice, default)
    {
    }

    public ScratchString(ReadOnlySpan<byte> document, JsonSlice slice, Span<byte> scratch)
    {
        if (slice.Kind(document) != JsonTokenType.String)
        {
            Span = default;
            return;
        }

        var raw = slice.In(document)[1..^1];
        if (raw.IndexOf((byte)'\\') < 0)
        {
            Span = raw;
            return;
        }

        var reader = slice.Reader(document);
        reader.Read();
        if (raw.Length <= scratch.Length)
        {
            Span = scratch[..reader.CopyString(scratch)];
            return;
        }

        PooledBytes.EnsureCapacity(ref _rented, 0, raw.Length, minimum: raw.Length);
        _length = reader.CopyString(_rented);
        Span = _rented.AsSpan(0, _length);
    }

    public ReadOnlySpan<byte> Span { get; private set; }

    public void Dispose()
    {
        if (_rented is not null)
        {
            PooledBytes.Return(_rented, _length);
            _rented = null;
        }

        Span = default;
    }
}
