using System.Text.Json;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToGemini;

/// <summary>
/// tool_call_id → the assistant tool call that carries it (a functionResponse needs the function's name),
/// over the calls of one request: keyed by a hash of the id's unescaped bytes, so no strings are made; the
/// last call with an id wins, as in a map filled in order. One per thread, reused.
/// </summary>
internal sealed class ToolCallLookup
{
    [ThreadStatic]
    private static ToolCallLookup? t_instance;

    private readonly Dictionary<int, int> _latest = [];
    private PooledList<Entry> _entries;

    private ToolCallLookup()
    {
    }

    /// <summary>The thread's lookup, filled with the named calls of the request's assistant messages.</summary>
    public static ToolCallLookup For(ReadOnlySpan<byte> document, in OpenAIRequest request)
    {
        var lookup = t_instance ??= new ToolCallLookup();
        lookup._latest.Clear();
        lookup._entries.Clear();
        Span<byte> scratch = stackalloc byte[ScratchString.StackSize];
        for (var i = 0; i < request.MessageCount; i++)
        {
            ref readonly var message = ref request.Message(i);
            if (message.Role != OpenAIRole.Assistant)
            {
                continue;
            }

            for (var j = 0; j < message.ToolCallCount; j++)
            {
                ref readonly var call = ref request.ToolCall(message.FirstToolCall + j);
                if (call.Id.Kind(document) == JsonTokenType.String && call.Name.Kind(document) == JsonTokenType.String)
                {
                    using var id = new ScratchString(document, call.Id, scratch);
                    lookup.Add(Hash(id.Span), message.FirstToolCall + j);
                }
            }
        }

        return lookup;
    }

    /// <summary>The index of the last call named <paramref name="id"/> (unescaped), or -1.</summary>
    public int Find(ReadOnlySpan<byte> document, in OpenAIRequest request, ReadOnlySpan<byte> id)
    {
        if (!_latest.TryGetValue(Hash(id), out var entry))
        {
            return -1;
        }

        Span<byte> scratch = stackalloc byte[ScratchString.StackSize];
        while (entry >= 0)
        {
            var call = _entries[entry].Call;
            using var candidate = new ScratchString(document, request.ToolCall(call).Id, scratch);
            if (candidate.Span.SequenceEqual(id))
            {
                return call;
            }

            entry = _entries[entry].Previous;
        }

        return -1;
    }

    private static int Hash(ReadOnlySpan<byte> id)
    {
        var hash = default(HashCode);
        hash.AddBytes(id);
        return hash.ToHashCode();
    }

    private void Add(int hash, int call)
    {
        var previous = _latest.TryGetValue(hash, out var latest) ? latest : -1;
        _latest[hash] = _entries.Count;
        _entries.Add(new Entry(call, previous));
    }

    private readonly record struct Entry(int Call, int Previous);
}
