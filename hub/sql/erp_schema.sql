-- The ERP database as it exists (MariaDB, legacy naming; a given: not simplified).
CREATE TABLE IF NOT EXISTS ART_MASTER (
    ART_NO   CHAR(10) PRIMARY KEY,
    ART_DESC VARCHAR(60),
    EAN_CODE CHAR(13),
    UOM      CHAR(3),
    STATUS   CHAR(1)                    -- A active, D discontinued
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS WHS_MASTER (
    WHS_CODE CHAR(4) PRIMARY KEY,
    WHS_NAME VARCHAR(40),
    CITY     VARCHAR(40)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS STK_BAL (
    WHS_CODE   CHAR(4),
    ART_NO     CHAR(10),
    QTY_OH     DECIMAL(12,3),
    QTY_ALLOC  DECIMAL(12,3),
    SAFETY_QTY DECIMAL(12,3),
    LAST_UPD   DATETIME,
    PRIMARY KEY (WHS_CODE, ART_NO)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS CUST_MAST (
    CUST_NO    INT PRIMARY KEY,
    CUST_NAME  VARCHAR(80),             -- "DUPONT Jean"
    EMAIL_ADDR VARCHAR(120),
    TEL_NO     VARCHAR(20),             -- national format, e.g. "01 42 68 53 00"
    ZIP        CHAR(5),
    CRE_DATE   DATE,
    UPD_TS     DATETIME
) ENGINE=InnoDB;
