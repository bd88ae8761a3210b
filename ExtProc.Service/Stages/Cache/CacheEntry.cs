using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;

namespace ExtProc.Stages.Cache;

/// <summary>What reading a stored entry found.</summary>
internal enum EntryCheck
{
    Valid,

    /// <summary>Truncated, bit-flipped or not ours: a miss, deleted.</summary>
    Corrupt,

    /// <summary>Well-formed but tagged with another tenant or key: a miss, deleted, and a security event.</summary>
    Foreign,
}

/// <summary>
/// The stored form of one answer: magic, the owning tenant and key hash (checked on every read, so an entry can
/// never answer for another tenant or key even if the store mixes them up), the content type, the body, and an
/// XxHash3 checksum over all of it (faults.md C6).
/// </summary>
internal static class CacheEntry
{
    private static ReadOnlySpan<byte> Magic => "XPC1"u8;

    public static byte[] Encode(string tenant, ReadOnlySpan<byte> keyHash, string contentType, ReadOnlySpan<byte> body)
    {
        var tenantBytes = Encoding.ASCII.GetByteCount(tenant);
        var typeBytes = Encoding.ASCII.GetByteCount(contentType);
        var entry = new byte[Magic.Length + 1 + tenantBytes + keyHash.Length + 1 + typeBytes + 4 + body.Length + 8];
        var at = 0;
        Magic.CopyTo(entry);
        at += Magic.Length;
        entry[at++] = (byte)tenantBytes;
        at += Encoding.ASCII.GetBytes(tenant, entry.AsSpan(at));
        keyHash.CopyTo(entry.AsSpan(at));
        at += keyHash.Length;
        entry[at++] = (byte)typeBytes;
        at += Encoding.ASCII.GetBytes(contentType, entry.AsSpan(at));
        BinaryPrimitives.WriteInt32LittleEndian(entry.AsSpan(at), body.Length);
        at += 4;
        body.CopyTo(entry.AsSpan(at));
        at += body.Length;
        BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(at), XxHash3.HashToUInt64(entry.AsSpan(0, at)));
        return entry;
    }

    /// <summary>Checks <paramref name="entry"/> for <paramref name="tenant"/> and <paramref name="keyHash"/>; on success the parts it holds.</summary>
    public static EntryCheck Read(byte[] entry, string tenant, ReadOnlySpan<byte> keyHash, out string contentType, out ReadOnlyMemory<byte> body)
    {
        contentType = string.Empty;
        body = default;
        var span = entry.AsSpan();
        if (span.Length < Magic.Length + 1 + 32 + 1 + 4 + 8 || !span.StartsWith(Magic)
            || XxHash3.HashToUInt64(span[..^8]) != BinaryPrimitives.ReadUInt64LittleEndian(span[^8..]))
        {
            return EntryCheck.Corrupt;
        }

        var at = Magic.Length;
        var tenantLength = span[at++];
        if (at + tenantLength + keyHash.Length + 1 > span.Length - 8)
        {
            return EntryCheck.Corrupt;
        }

        var owner = span.Slice(at, tenantLength);
        at += tenantLength;
        var storedHash = span.Slice(at, keyHash.Length);
        at += keyHash.Length;
        var typeLength = span[at++];
        if (at + typeLength + 4 > span.Length - 8)
        {
            return EntryCheck.Corrupt;
        }

        var type = span.Slice(at, typeLength);
        at += typeLength;
        var bodyLength = BinaryPrimitives.ReadInt32LittleEndian(span[at..]);
        at += 4;
        if (bodyLength < 0 || at + bodyLength != span.Length - 8)
        {
            return EntryCheck.Corrupt;
        }

        if (!IsTenant(owner, tenant) || !storedHash.SequenceEqual(keyHash))
        {
            return EntryCheck.Foreign;
        }

        contentType = Encoding.ASCII.GetString(type);
        body = entry.AsMemory(at, bodyLength);
        return EntryCheck.Valid;
    }

    private static bool IsTenant(ReadOnlySpan<byte> owner, string tenant)
    {
        if (owner.Length != tenant.Length)
        {
            return false;
        }

        for (var i = 0; i < owner.Length; i++)
        {
            if (owner[i] != tenant[i])
            {
                return false;
            }
        }

        return true;
    }
}
