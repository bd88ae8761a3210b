using System.Buffers;

namespace ExtProc.Translation.Common;

/// <summary>
/// A growable list on <see cref="ArrayPool{T}.Shared"/> for what a single-pass read records (slices, which
/// are offsets into the body and hold none of its bytes, so nothing needs clearing on return).
/// </summary>
internal struct PooledList<T>
    where T : unmanaged
{
    private T[]? _items;

    public int Count { readonly get; private set; }

    public readonly ref readonly T this[int index] => ref _items.AsSpan(0, Count)[index];

    public void Add(in T item)
    {
        if (_items is null || Count == _items.Length)
        {
            var larger = ArrayPool<T>.Shared.Rent(Math.Max(16, Count * 2));
            _items?.AsSpan(0, Count).CopyTo(larger);
            Release();
            _items = larger;
        }

        _items[Count++] = item;
    }

    /// <summary>Empties the list and keeps its array for reuse.</summary>
    public void Clear() => Count = 0;

    public void Dispose()
    {
        Release();
        Count = 0;
    }

    private void Release()
    {
        if (_items is not null)
        {
            ArrayPool<T>.Shared.Return(_items);
            _items = null;
        }
    }
}
