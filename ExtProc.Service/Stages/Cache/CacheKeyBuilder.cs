using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ExtProc.Buffers;
using ExtProc.Protocols;

namespace ExtProc.Stages.Cache;

/// <summary>What, besides the body, a cached answer is bound to: who may see it and under which rules.</summary>
internal readonly record struct CacheScope(
    string TenantId,
    string PolicyVersion,
    ReadOnlyMemory<byte> PermissionHash,
    string Model,
    ProtocolKind Protocol,
    string Path,
    string? Variant);

/// <summary>A computed key: the SHA-256 of scope and canonical body, and whether the request samples.</summary>
internal readonly record struct CacheKey(byte[] Hash, bool Sampled)
{
    /// <summary>The store key: readable tenant prefix (operators can drop one tenant's entries), then the hash.</summary>
    public string StoreKey(string tenantId) => tenantId + ":" + Convert.ToHexStringLower(Hash);
}

/// <summary>
/// Builds cache keys from the parsed body (faults.md C4): the body is read with <see cref="Utf8JsonReader"/> into a
/// canonical form where member order, whitespace and string escapes no longer matter, then hashed with the scope.
/// The canonical form is a type-tagged, length-prefixed encoding (not JSON): no two different documents share one.
/// Numbers keep their text (<c>1</c> and <c>1.0</c> are different keys: a miss, never a wrong hit). Top-level fields
/// the <see cref="RequestFieldTable"/> marks ignored are left out; everything else, known or not, is in.
/// </summary>
internal static class CacheKeyBuilder
{
    private const byte ObjectTag = (byte)'o';
    private const byte ArrayTag = (byte)'a';
    private const byte EndTag = (byte)'e';
    private const byte StringTag = (byte)'s';
    private const byte NumberTag = (byte)'n';

    private static readonly JsonReaderOptions Options = new() { MaxDepth = 256 };

    /// <summary>The key of <paramref name="body"/> in <paramref name="scope"/>; false when the body cannot be read (then: bypass).</summary>
    public static bool TryCompute(in CacheScope scope, ReadOnlySpan<byte> body, out CacheKey key)
    {
        var buffer = new Canonical(body.Length + 256);
        try
        {
            buffer.WriteText(scope.TenantId);
            buffer.WriteText(scope.PolicyVersion);
            buffer.WriteBytes(scope.PermissionHash.Span);
            buffer.WriteText(scope.Model);
            buffer.WriteText(scope.Protocol.ToWireName());
            buffer.WriteText(scope.Path);
            buffer.WriteText(scope.Variant ?? string.Empty);
            if (!TryCanonicalize(scope.Protocol, body, ref buffer, out var temperature))
            {
                key = default;
                return false;
            }

            var hash = new byte[32];
            SHA256.HashData(buffer.Written, hash);

            // Absent temperature samples too: the providers default to 1.
            key = new CacheKey(hash, temperature is not 0);
            return true;
        }
        finally
        {
            buffer.Dispose();
        }
    }

    /// <summary>The canonical form of <paramref name="body"/> alone (tests compare it directly).</summary>
    internal static byte[]? Canonicalize(ProtocolKind protocol, ReadOnlySpan<byte> body)
    {
        var buffer = new Canonical(body.Length + 64);
        try
        {
            return TryCanonicalize(protocol, body, ref buffer, out _) ? buffer.Written.ToArray() : null;
        }
        finally
        {
            buffer.Dispose();
        }
    }

    private static bool TryCanonicalize(ProtocolKind protocol, ReadOnlySpan<byte> body, ref Canonical output, out double? temperature)
    {
        temperature = null;
        var reader = new Utf8JsonReader(body, Options);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            var context = new TopLevel(protocol);
            WriteObject(ref reader, ref output, ref context, depth: 1);
            temperature = context.Temperature;
            return !reader.Read();
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // Invalid UTF-16 escapes and the like: the parse stage refuses them first; here they only bypass.
            return false;
        }
    }

    private static void WriteValue(ref Utf8JsonReader reader, ref Canonical output, ref TopLevel context, int depth)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.StartObject:
                WriteObject(ref reader, ref output, ref context, depth + 1);
                break;
            case JsonTokenType.StartArray:
                output.WriteByte(ArrayTag);
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    WriteValue(ref reader, ref output, ref context, depth + 1);
                }

                output.WriteByte(EndTag);
                break;
            case JsonTokenType.String:
                output.WriteString(ref reader);
                break;
            case JsonTokenType.Number:
                output.WriteByte(NumberTag);
                output.WriteBytes(reader.ValueSpan);
                break;
            case JsonTokenType.True:
                output.WriteByte((byte)'t');
                break;
            case JsonTokenType.False:
                output.WriteByte((byte)'f');
                break;
            default:
                output.WriteByte((byte)'z');
                break;
        }
    }

    /// <summary>Writes an object with its members sorted by unescaped name (ordinal bytes).</summary>
    private static void WriteObject(ref Utf8JsonReader reader, ref Canonical output, ref TopLevel context, int depth)
    {
        output.WriteByte(ObjectTag);
        var first = output.Length;
        var starts = ArrayPool<int>.Shared.Rent(16);
        var count = 0;
        var sorted = true;
        try
        {
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var start = output.Length;
                output.WriteString(ref reader);
                var role = depth == 1 ? context.Classify(output.NameAt(start)) : KeyRole.InKey;
                reader.Read();
                if (role == KeyRole.Ignored)
                {
                    output.Truncate(start);
                    reader.Skip();
                    continue;
                }

                context.Observe(output.NameAt(start), ref reader, depth);
                WriteValue(ref reader, ref output, ref context, depth);
                if (count == starts.Length)
                {
                    var grown = ArrayPool<int>.Shared.Rent(count * 2);
                    starts.AsSpan(0, count).CopyTo(grown);
                    ArrayPool<int>.Shared.Return(starts);
                    starts = grown;
                }

                if (count > 0 && output.NameAt(starts[count - 1]).SequenceCompareTo(output.NameAt(start)) > 0)
                {
                    sorted = false;
                }

                starts[count++] = start;
            }

            if (!sorted)
            {
                output.SortMembers(first, starts.AsSpan(0, count));
            }

            output.WriteByte(EndTag);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(starts);
        }
    }

    /// <summary>What the top level of the body tells besides its form: ignored fields and the sampling temperature.</summary>
    private struct TopLevel
    {
        private readonly ProtocolKind _protocol;
        private bool _inGenerationConfig;

        public TopLevel(ProtocolKind protocol) => _protocol = protocol;

        public double? Temperature { get; private set; }

        public readonly KeyRole Classify(ReadOnlySpan<byte> utf8Name)
        {
            Span<char> chars = stackalloc char[64];
            return Encoding.UTF8.TryGetChars(utf8Name, chars, out var written)
                ? RequestFieldTable.Find(_protocol, chars[..written]) ?? KeyRole.InKey
                : KeyRole.InKey;
        }

        public void Observe(ReadOnlySpan<byte> utf8Name, ref Utf8JsonReader reader, int depth)
        {
            if (_protocol == ProtocolKind.Gemini)
            {
                if (depth == 1)
                {
                    _inGenerationConfig = reader.TokenType == JsonTokenType.StartObject
                        && (utf8Name.SequenceEqual("generationConfig"u8) || utf8Name.SequenceEqual("generation_config"u8));
                    return;
                }

                if (depth != 2 || !_inGenerationConfig)
                {
                    return;
                }
            }
            else if (depth != 1)
            {
                return;
            }

            if (utf8Name.SequenceEqual("temperature"u8))
            {
                Temperature = reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out var value) ? value : double.NaN;
            }
        }
    }

    /// <summary>Orders members (start, length) of a copied object by name; a struct, so sorting allocates nothing.</summary>
    private readonly struct MemberOrder : IComparer<(int Start, int Length)>
    {
        private readonly byte[] _bytes;

        public MemberOrder(byte[] bytes) => _bytes = bytes;

        public int Compare((int Start, int Length) x, (int Start, int Length) y) => Name(x.Start).SequenceCompareTo(Name(y.Start));

        private ReadOnlySpan<byte> Name(int start) => _bytes.AsSpan(start + 5, BinaryPrimitives.ReadInt32LittleEndian(_bytes.AsSpan(start + 1)));
    }

    /// <summary>The canonical bytes, in one pooled array (cleared when returned: it holds a request body).</summary>
    private struct Canonical : IDisposable
    {
        private byte[]? _buffer;
        private int _length;
        private int _peak;

        public Canonical(int capacity) => PooledBytes.EnsureCapacity(ref _buffer, 0, capacity);

        public readonly int Length => _length;

        public readonly ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _length);

        public void WriteByte(byte value)
        {
            Ensure(1);
            _buffer![_length++] = value;
        }

        /// <summary>Length-prefixed bytes (no tag): scope fields.</summary>
        public void WriteBytes(ReadOnlySpan<byte> bytes)
        {
            Ensure(bytes.Length + 4);
            BinaryPrimitives.WriteInt32LittleEndian(_buffer.AsSpan(_length), bytes.Length);
            bytes.CopyTo(_buffer.AsSpan(_length + 4));
            _length += bytes.Length + 4;
        }

        public void WriteText(string text)
        {
            var count = Encoding.UTF8.GetByteCount(text);
            Ensure(count + 4);
            BinaryPrimitives.WriteInt32LittleEndian(_buffer.AsSpan(_length), count);
            Encoding.UTF8.GetBytes(text, _buffer.AsSpan(_length + 4));
            _length += count + 4;
        }

        /// <summary>A string or property name, unescaped: 's', length, UTF-8 bytes.</summary>
        public void WriteString(ref Utf8JsonReader reader)
        {
            var raw = reader.ValueSpan;
            Ensure(raw.Length + 5);
            var span = _buffer.AsSpan(_length + 5);
            var count = reader.ValueIsEscaped ? reader.CopyString(span) : Copy(raw, span);
            _buffer![_length] = StringTag;
            BinaryPrimitives.WriteInt32LittleEndian(_buffer.AsSpan(_length + 1), count);
            _length += count + 5;

            static int Copy(ReadOnlySpan<byte> from, Span<byte> to)
            {
                from.CopyTo(to);
                return from.Length;
            }
        }

        /// <summary>The name bytes of the member (or string) written at <paramref name="start"/>.</summary>
        public readonly ReadOnlySpan<byte> NameAt(int start) =>
            _buffer.AsSpan(start + 5, BinaryPrimitives.ReadInt32LittleEndian(_buffer.AsSpan(start + 1)));

        public void Truncate(int length)
        {
            _peak = Math.Max(_peak, _length);
            _length = length;
        }

        /// <summary>Reorders the members starting at <paramref name="starts"/> (they run to the current end) by name.</summary>
        public readonly void SortMembers(int first, Span<int> starts)
        {
            var end = _length;
            var size = end - first;
            var copy = ArrayPool<byte>.Shared.Rent(size);
            var order = ArrayPool<(int Start, int Length)>.Shared.Rent(starts.Length);
            try
            {
                _buffer.AsSpan(first, size).CopyTo(copy);
                for (var i = 0; i < starts.Length; i++)
                {
                    var next = i + 1 < starts.Length ? starts[i + 1] : end;
                    order[i] = (starts[i] - first, next - starts[i]);
                }

                var members = order.AsSpan(0, starts.Length);
                var byName = new MemberOrder(copy);
                if (members.Length <= 16)
                {
                    // Small objects (almost all): insertion sort, which allocates nothing (Span.Sort boxes the comparer).
                    for (var i = 1; i < members.Length; i++)
                    {
                        var member = members[i];
                        var j = i - 1;
                        for (; j >= 0 && byName.Compare(members[j], member) > 0; j--)
                        {
                            members[j + 1] = members[j];
                        }

                        members[j + 1] = member;
                    }
                }
                else
                {
                    members.Sort(byName);
                }
                var at = first;
                foreach (var (start, length) in members)
                {
                    copy.AsSpan(start, length).CopyTo(_buffer.AsSpan(at));
                    at += length;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(copy, clearArray: true);
                ArrayPool<(int, int)>.Shared.Return(order);
            }

        }

        public void Dispose()
        {
            var buffer = _buffer;
            _buffer = null;
            if (buffer is not null)
            {
                PooledBytes.Return(buffer, Math.Max(_peak, _length));
            }
        }

        private void Ensure(int more)
        {
            _peak = Math.Max(_peak, _length);
            PooledBytes.EnsureCapacity(ref _buffer, _peak, _length + more, minimum: 1024);
        }
    }
}
