using System.Security.Cryptography;
using System.Text;

namespace ExtProc.Tenancy.Keys;

/// <summary>
/// Virtual API keys: <c>xp_&lt;id&gt;_&lt;secret&gt;</c>. The id is public (it names the key in logs,
/// metrics and the config file); the secret is 32 random bytes in lower-case base32. Config holds only
/// <c>sha256:&lt;hex&gt;</c> of the whole key string.
/// </summary>
internal static class ApiKeyFormat
{
    public const string Prefix = "xp_";
    public const string HashPrefix = "sha256:";
    public const int MaxIdLength = 32;
    public const int MaxKeyLength = 256;
    private const string Base32 = "abcdefghijklmnopqrstuvwxyz234567";

    /// <summary>Key ids: 3 to 32 of [a-z0-9-], no underscore (it ends the id inside a key).</summary>
    public static bool IsValidId(ReadOnlySpan<char> id)
    {
        if (id.Length is < 3 or > MaxIdLength)
        {
            return false;
        }

        foreach (var c in id)
        {
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '-'))
            {
                return false;
            }
        }

        return true;
    }

    public static string NewId() => Encode(RandomNumberGenerator.GetBytes(5)); // 8 characters

    /// <summary>Makes a new key for <paramref name="id"/>; the caller prints it once and keeps only its hash.</summary>
    public static string NewKey(string id)
    {
        if (!IsValidId(id))
        {
            throw new ArgumentException("Key ids are 3 to 32 characters of a-z, 0-9 and '-'.", nameof(id));
        }

        var secret = RandomNumberGenerator.GetBytes(32);
        try
        {
            return Prefix + id + "_" + Encode(secret);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    public static string HashText(string key)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(key), hash);
        return HashPrefix + Convert.ToHexStringLower(hash);
    }

    /// <summary>Parses "sha256:&lt;64 hex&gt;" into the 32 hash bytes.</summary>
    public static bool TryParseHash(string text, out byte[] hash)
    {
        hash = [];
        if (!text.StartsWith(HashPrefix, StringComparison.Ordinal) || text.Length != HashPrefix.Length + 64)
        {
            return false;
        }

        var hex = text.AsSpan(HashPrefix.Length);
        foreach (var c in hex)
        {
            if (c is not ((>= '0' and <= '9') or (>= 'a' and <= 'f')))
            {
                return false;
            }
        }

        hash = Convert.FromHexString(hex);
        return true;
    }

    /// <summary>
    /// Splits a presented key (raw header bytes) into its id, or false when it is not one of ours.
    /// Only the id is returned; the secret is never copied out of the request buffer.
    /// </summary>
    public static bool TryReadId(ReadOnlySpan<byte> key, Span<char> idBuffer, out int idLength)
    {
        idLength = 0;
        if (key.Length > MaxKeyLength || !key.StartsWith("xp_"u8))
        {
            return false;
        }

        var rest = key[Prefix.Length..];
        var end = rest.IndexOf((byte)'_');
        if (end is < 3 or > MaxIdLength || end == rest.Length - 1)
        {
            return false;
        }

        for (var i = 0; i < end; i++)
        {
            idBuffer[i] = (char)rest[i];
        }

        idLength = end;
        return IsValidId(idBuffer[..end]);
    }

    private static string Encode(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[(bytes.Length * 8 + 4) / 5];
        int buffer = 0, bits = 0, index = 0;
        foreach (var b in bytes)
        {
            buffer = (buffer << 8) | b;
            bits += 8;
            while (bits >= 5)
            {
                chars[index++] = Base32[(buffer >> (bits - 5)) & 31];
                bits -= 5;
            }
        }

        if (bits > 0)
        {
            chars[index++] = Base32[(buffer << (5 - bits)) & 31];
        }

        return new string(chars, 0, index);
    }
}
