using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace ExtProc.Storage;

/// <summary>
/// Counter and reservation keys. Key scheme (versioned; operators may read it in Redis):
/// <code>
///   xp:l1:{rule}:{hash}           a request / token counter; the store appends ":{window index}"
///   xp:l1:{rule}:{hash}:{period}  a budget counter for one calendar period (e.g. d2026-11-24, w2026-11-23, m2026-11)
///   xp:l1:{rule}:{hash}           a concurrency set (members are reservation ids)
///   xp:r1:{reservation id}        the reservation record (hash) used by settlement
/// </code>
/// {rule} is a config name (a-z, 0-9, '-', '_', '.'); {hash} is the first 128 bits of SHA-256 over the
/// length-prefixed parts (tenant, key id, model) in base64url, so no value, whatever separators or length
/// it carries, can collide with another (faults.md L11), and no client text reaches Redis as key text.
/// </summary>
internal static class LimitKeys
{
    public const string CounterPrefix = "xp:l1:";
    public const string ReservationPrefix = "xp:r1:";

    public static string Counter(string rule, string? tenant, string? keyId, string? model)
    {
        Span<byte> hash = stackalloc byte[32];
        var length = Part(tenant) + Part(keyId) + Part(model);
        var rented = length <= 1024 ? null : new byte[length];
        var buffer = rented ?? stackalloc byte[length];
        var offset = Write(buffer, 0, tenant);
        offset = Write(buffer, offset, keyId);
        Write(buffer, offset, model);
        SHA256.HashData(buffer[..length], hash);
        return string.Concat(CounterPrefix, rule, ":", Convert.ToBase64String(hash[..16]).TrimEnd('=').Replace('+', '-').Replace('/', '_'));
    }

    public static string Reservation(string reservationId) => ReservationPrefix + reservationId;

    // 1 byte present flag + 4 bytes length + UTF-8 bytes: "absent" differs from "empty".
    private static int Part(string? value) => 5 + (value is null ? 0 : Encoding.UTF8.GetByteCount(value));

    private static int Write(Span<byte> buffer, int offset, string? value)
    {
        buffer[offset] = value is null ? (byte)0 : (byte)1;
        var count = value is null ? 0 : Encoding.UTF8.GetBytes(value, buffer[(offset + 5)..]);
        BinaryPrimitives.WriteInt32BigEndian(buffer[(offset + 1)..], count);
        return offset + 5 + count;
    }
}
