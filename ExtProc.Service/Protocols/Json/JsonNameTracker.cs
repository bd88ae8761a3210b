using System.Security.Cryptography;
using ExtProc.Buffers;

namespace ExtProc.Protocols.Json;

/// <summary>
/// Remembers the (unescaped) property names of every open object so a duplicate is found in O(1), however
/// many keys an object has. Names with equal hashes are chained and compared byte for byte, so a hash
/// collision can never hide a duplicate. One instance per thread, reset per document.
/// </summary>
internal sealed class JsonNameTracker
{
    private static readonly ulong Seed = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));

    [ThreadStatic]
    private static JsonNameTracker? t_cached;

    private readonly Dictionary<(int Object, ulong Hash), int> _heads = [];
    private readonly List<(int Offset, int Length, int Next)> _names = [];
    private byte[]? _arena;
    private int _arenaLength;
    private int[] _objectAtDepth = new int[64];
    private int _nextObject;

    public static JsonNameTracker Rent()
    {
        var tracker = t_cached ?? new JsonNameTracker();
        t_cached = null;
        return tracker;
    }

    public static void Return(JsonNameTracker tracker)
    {
        tracker.Reset();
        t_cached = tracker;
    }

    /// <summary>An object starts at <paramref name="depth"/> (the reader's depth of its StartObject token).</summary>
    public void EnterObject(int depth)
    {
        if (depth >= _objectAtDepth.Length)
        {
            Array.Resize(ref _objectAtDepth, Math.Max(depth + 1, _objectAtDepth.Length * 2));
        }

        _objectAtDepth[depth] = ++_nextObject;
    }

    /// <summary>Records a property name of the object at <paramref name="depth"/>; false if it was already there.</summary>
    public bool Add(int depth, ReadOnlySpan<byte> name)
    {
        var key = (_objectAtDepth[depth], Hash(name));
        var head = _heads.TryGetValue(key, out var first) ? first : -1;
        for (var i = head; i >= 0; i = _names[i].Next)
        {
            if (_arena.AsSpan(_names[i].Offset, _names[i].Length).SequenceEqual(name))
            {
                return false;
            }
        }

        PooledBytes.EnsureCapacity(ref _arena, _arenaLength, _arenaLength + name.Length);
        name.CopyTo(_arena.AsSpan(_arenaLength));
        _names.Add((_arenaLength, name.Length, head));
        _heads[key] = _names.Count - 1;
        _arenaLength += name.Length;
        return true;
    }

    private void Reset()
    {
        _heads.Clear();
        _names.Clear();
        if (_arena is not null)
        {
            // Keep a small arena across documents; give a large one back.
            if (_arena.Length > 64 * 1024)
            {
                PooledBytes.Return(_arena, _arenaLength);
                _arena = null;
            }
            else
            {
                _arena.AsSpan(0, _arenaLength).Clear();
            }
        }

        _arenaLength = 0;
        _nextObject = 0;
    }

    private static ulong Hash(ReadOnlySpan<byte> name)
    {
        // FNV-1a, seeded.
        var hash = 14695981039346656037UL ^ Seed;
        foreach (var b in name)
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }

        return hash;
    }
}
