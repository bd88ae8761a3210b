using System.Text;

namespace ExtProc.Pipeline;

/// <summary>
/// Header edits a stage wants applied in the current direction. Envoy reads only raw values and
/// overwrites unless told to append, so an edit is (name, bytes, append) or a removal.
/// </summary>
internal sealed class HeaderMutationBuilder
{
    // Created on the first edit: two builders per stream, and most replies carry no edit at all.
    private List<HeaderEdit>? _sets;
    private List<string>? _removals;

    public bool IsEmpty => (_sets is null || _sets.Count == 0) && (_removals is null || _removals.Count == 0);

    public IReadOnlyList<HeaderEdit> Sets => (IReadOnlyList<HeaderEdit>?)_sets ?? [];

    public IReadOnlyList<string> Removals => (IReadOnlyList<string>?)_removals ?? [];

    /// <summary>Replaces every value of <paramref name="name"/> (Envoy's default, append unset).</summary>
    public void Set(string name, ReadOnlyMemory<byte> value) => Upsert(new HeaderEdit(name, value, Append: false));

    public void Set(string name, string value) => Set(name, Encoding.UTF8.GetBytes(value));

    /// <summary>Adds one more value, keeping the existing ones.</summary>
    public void Append(string name, ReadOnlyMemory<byte> value) => (_sets ??= []).Add(new HeaderEdit(name, value, Append: true));

    public void Remove(string name)
    {
        // A later removal cancels an earlier set of the same header in this reply.
        _sets?.RemoveAll(e => string.Equals(e.Name, name, StringComparison.Ordinal));
        var removals = _removals ??= [];
        if (!removals.Contains(name))
        {
            removals.Add(name);
        }
    }

    public void Clear()
    {
        _sets?.Clear();
        _removals?.Clear();
    }

    private void Upsert(HeaderEdit edit)
    {
        _removals?.Remove(edit.Name);
        var sets = _sets ??= [];
        for (var i = 0; i < sets.Count; i++)
        {
            if (!sets[i].Append && string.Equals(sets[i].Name, edit.Name, StringComparison.Ordinal))
            {
                sets[i] = edit;
                return;
            }
        }

        sets.Add(edit);
    }
}

internal readonly record struct HeaderEdit(string Name, ReadOnlyMemory<byte> Value, bool Append);
