using System.Linq;
using System.Text;

namespace NvRedirect.Core.Model;

/// <summary>
/// The one interface-name validator: what the kernel accepts as a name (dev_valid_name), counted in UTF-8 bytes as the
/// kernel counts them. The daemon checks iface with it, the module every name a user gives.
/// </summary>
public static class InterfaceName
{
    /// <summary>Largest interface name in bytes, NUL excluded (IFNAMSIZ - 1).</summary>
    public const int MaxBytes = Netlink.Rtnl.MaxInterfaceNameBytes;

    /// <summary>Why <paramref name="name"/> is not an interface name, or null when it is one.</summary>
    public static string? Problem(string? name)
    {
        if (string.IsNullOrEmpty(name)) return "the name is empty";
        if (Encoding.UTF8.GetByteCount(name) > MaxBytes) return $"'{name}' is longer than {MaxBytes} bytes";
        if (name is "." or "..") return $"'{name}' is reserved";
        if (name.Contains('/')) return $"'{name}' contains '/'";
        if (name.Contains(':')) return $"'{name}' contains ':'";
        if (name.Any(char.IsWhiteSpace)) return $"'{name}' contains white space";
        if (name.Any(char.IsControl)) return $"'{name}' contains a control character";
        return null;
    }
}
