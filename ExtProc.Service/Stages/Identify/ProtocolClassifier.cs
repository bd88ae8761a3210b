using System.Buffers;
using ExtProc.Protocols;

namespace ExtProc.Stages.Identify;

/// <summary>
/// Identifies the protocol of a request from its method, path and content type. The path is
/// normalised first (query cut, percent-decoded, dot segments resolved, slashes merged, ASCII
/// lower-cased, trailing slash dropped) so that spelling variants an upstream would accept cannot
/// slip past as ungoverned traffic.
/// </summary>
internal sealed class ProtocolClassifier
{
    private const int StackLimit = 1024;
    private readonly byte[][] _mcpPaths;

    public ProtocolClassifier(IReadOnlyList<string> mcpPaths)
    {
        _mcpPaths = new byte[mcpPaths.Count][];
        for (var i = 0; i < mcpPaths.Count; i++)
        {
            var raw = System.Text.Encoding.UTF8.GetBytes(mcpPaths[i]);
            var normalized = new byte[raw.Length + 1];
            var length = NormalizePath(raw, normalized);
            _mcpPaths[i] = normalized.AsSpan(0, length).ToArray();
        }
    }

    public ProtocolKind Classify(ReadOnlySpan<byte> path)
    {
        byte[]? rented = null;
        var scratch = path.Length + 1 <= StackLimit
            ? stackalloc byte[StackLimit]
            : (rented = ArrayPool<byte>.Shared.Rent(path.Length + 1));
        try
        {
            var length = NormalizePath(path, scratch);
            return ClassifyNormalized(scratch[..length]);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private ProtocolKind ClassifyNormalized(ReadOnlySpan<byte> path)
    {
        if (path.EndsWith("/chat/completions"u8))
        {
            return ProtocolKind.OpenAiChat;
        }

        if (path.EndsWith("/v1/messages"u8))
        {
            return ProtocolKind.AnthropicMessages;
        }

        if (path.IndexOf("/models/"u8) >= 0 && (path.EndsWith(":generatecontent"u8) || path.EndsWith(":streamgeneratecontent"u8)))
        {
            return ProtocolKind.Gemini;
        }

        foreach (var mcp in _mcpPaths)
        {
            if (path.SequenceEqual(mcp) || (path.StartsWith(mcp) && path.Length > mcp.Length && path[mcp.Length] == (byte)'/'))
            {
                return ProtocolKind.Mcp;
            }
        }

        return ProtocolKind.Other;
    }

    /// <summary>Writes the normalised path into <paramref name="output"/> (at least input length + 1) and returns its length.</summary>
    internal static int NormalizePath(ReadOnlySpan<byte> path, Span<byte> output)
    {
        var end = path.IndexOfAny((byte)'?', (byte)'#');
        if (end >= 0)
        {
            path = path[..end];
        }

        var length = 0;
        output[length++] = (byte)'/';
        var i = 0;
        while (i < path.Length)
        {
            var b = path[i];
            if (b == (byte)'%' && i + 2 < path.Length && TryHex(path[i + 1], path[i + 2], out var decoded))
            {
                b = decoded;
                i += 3;
            }
            else
            {
                i++;
            }

            if (b == (byte)'\\')
            {
                b = (byte)'/';
            }

            if (b == (byte)'/')
            {
                if (output[length - 1] != (byte)'/')
                {
                    output[length++] = b;
                }

                continue;
            }

            output[length++] = b is >= (byte)'A' and <= (byte)'Z' ? (byte)(b | 0x20) : b;
        }

        length = ResolveDotSegments(output, length);
        if (length > 1 && output[length - 1] == (byte)'/')
        {
            length--;
        }

        return length;
    }

    // Resolves "." and ".." segments in place, in one pass over the merged path (writes never pass reads).
    private static int ResolveDotSegments(Span<byte> output, int length)
    {
        Span<int> starts = stackalloc int[64];
        var depth = 0;
        var write = 0;
        var read = 0;
        var scratch = output[..length];
        while (read < scratch.Length)
        {
            // scratch[read] == '/'
            var next = scratch[(read + 1)..].IndexOf((byte)'/');
            var segEnd = next < 0 ? scratch.Length : read + 1 + next;
            var segment = scratch[(read + 1)..segEnd];
            if (segment.SequenceEqual("."u8))
            {
                // drop
            }
            else if (segment.SequenceEqual(".."u8))
            {
                if (depth > 0)
                {
                    write = starts[--depth];
                }
            }
            else
            {
                if (depth < starts.Length)
                {
                    starts[depth++] = write;
                }

                output[write++] = (byte)'/';
                segment.CopyTo(output[write..]);
                write += segment.Length;
            }

            read = segEnd;
        }

        if (write == 0)
        {
            output[write++] = (byte)'/';
        }

        return write;
    }

    private static bool TryHex(byte high, byte low, out byte value)
    {
        var h = HexValue(high);
        var l = HexValue(low);
        value = (byte)((h << 4) | l);
        return h >= 0 && l >= 0;
    }

    private static int HexValue(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => -1,
    };
}
