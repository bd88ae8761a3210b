using System.Text;

namespace ExtProc.Protocols.Json;

/// <summary>
/// Comparisons for the field names we act on. Some upstream parsers match keys case-insensitively and fold
/// a few non-ASCII letters onto ASCII ones (Go: U+017F long s → s, U+212A Kelvin sign → k), so a key that folds
/// onto one of our fields without being it is ambiguous and refused (faults.md §0.7, J3).
/// </summary>
internal static class FieldNames
{
    /// <summary>True when <paramref name="utf8Name"/> folds onto the lower-case ASCII <paramref name="field"/>.</summary>
    public static bool FoldEquals(ReadOnlySpan<byte> utf8Name, string field)
    {
        var i = 0;
        while (!utf8Name.IsEmpty)
        {
            if (Rune.DecodeFromUtf8(utf8Name, out var rune, out var consumed) != System.Buffers.OperationStatus.Done || i >= field.Length)
            {
                return false;
            }

            utf8Name = utf8Name[consumed..];
            var folded = rune.Value switch
            {
                >= 'A' and <= 'Z' => rune.Value | 0x20,
                0x017F => 's',
                0x212A => 'k',
                _ => rune.Value,
            };
            if (folded != field[i++])
            {
                return false;
            }
        }

        return i == field.Length;
    }

    /// <summary>
    /// For a name that is none of our fields exactly: true when it folds onto one of <paramref name="lowerCaseFields"/>.
    /// </summary>
    public static bool FoldsOntoAny(ReadOnlySpan<byte> utf8Name, string[] lowerCaseFields)
    {
        for (var i = 0; i < lowerCaseFields.Length; i++)
        {
            if (FoldEquals(utf8Name, lowerCaseFields[i]) && !IsExactly(utf8Name, lowerCaseFields[i]))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>True when <paramref name="utf8Name"/> is, or folds onto, one of <paramref name="lowerCaseFields"/>.</summary>
    public static bool IsOrFoldsOntoAny(ReadOnlySpan<byte> utf8Name, string[] lowerCaseFields)
    {
        for (var i = 0; i < lowerCaseFields.Length; i++)
        {
            if (FoldEquals(utf8Name, lowerCaseFields[i]))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The field itself (a read-and-pass-through field such as <c>stream_options</c>) is never ambiguous.</summary>
    private static bool IsExactly(ReadOnlySpan<byte> utf8Name, string field)
    {
        if (utf8Name.Length != field.Length)
        {
            return false;
        }

        for (var i = 0; i < field.Length; i++)
        {
            if (utf8Name[i] != field[i])
            {
                return false;
            }
        }

        return true;
    }
}
